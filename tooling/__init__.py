"""Machinery below the program: the local platform, the toolchain, scans, scripts and the bench."""
