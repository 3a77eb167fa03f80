"""Étika terminal core: money, profiles, store, journal, EMV kernel, CLI."""
