/usr/bin/own-a {
  dbus bind bus=session name=org.own.Svc,
}
