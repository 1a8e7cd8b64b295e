"""The ``quanta`` command line: one thin module per medium; parsing and printing only."""
