/usr/bin/own-a {
  signal send set=hup peer=/usr/bin/own-b,
}
