"""The `tonesweep` command line, the top of the house: ``parser`` spells the commands and flags, ``main``
runs one, ``commands`` holds one handler per command (arguments in, one library call, printing out).
It may import every other package; none imports it."""
