"""`python -m waypost.cli`, as the tests and the demo start a worker."""

from waypost.cli import main

main()
