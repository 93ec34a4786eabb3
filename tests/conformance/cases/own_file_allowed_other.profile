/usr/bin/own-a {
  /run/own/sock w,
}
