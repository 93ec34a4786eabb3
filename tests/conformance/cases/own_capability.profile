/usr/bin/own-a {
  capability net_admin,
}
