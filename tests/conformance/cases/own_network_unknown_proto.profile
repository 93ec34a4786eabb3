/usr/bin/own-a {
  network inet6 dgram,
}
