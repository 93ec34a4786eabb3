/usr/bin/own-a {
  ptrace trace peer=/usr/bin/own-b,
}
