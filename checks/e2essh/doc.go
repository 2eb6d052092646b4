// Package e2essh holds the SSH end-to-end tests: a lab built with --ssh
// (a management network, a bastion, a real OpenSSH sshd in every host),
// the check run over SSH from inside the management namespace, and its
// findings compared with the same check over netns. They live in a package
// of their own so that they get their own test timeout beside the netns
// end-to-end tests of package checks.
package e2essh
