/usr/bin/own-a {
  network inet raw,
}
