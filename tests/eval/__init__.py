"""Tests of mstar.eval (a package so module names do not clash with tests of other packages)."""
