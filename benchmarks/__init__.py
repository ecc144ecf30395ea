"""Benchmarks, run by hand (see README.md, Development); a package so that they import each other."""
