/usr/bin/own-b {
  owner /tmp/own/link l,
}
