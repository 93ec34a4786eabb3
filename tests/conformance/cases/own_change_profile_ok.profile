/usr/bin/own-a {
  change_profile -> own-target,
}
