/usr/bin/own-a {
  dbus send bus=system path=/org/freedesktop/hostname1 interface=org.freedesktop.hostname1 member=SetHostname peer=(label=unconfined),
}
