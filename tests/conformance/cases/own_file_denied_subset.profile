/usr/bin/own-a {
  owner /srv/data/x.db w,
}
