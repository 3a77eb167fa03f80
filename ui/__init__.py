"""The Textual merchant UI: it calls the terminal services facade and does no I/O itself."""
