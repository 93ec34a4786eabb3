/usr/bin/own-a {
  # exec /usr/bin/helper -> 
}
