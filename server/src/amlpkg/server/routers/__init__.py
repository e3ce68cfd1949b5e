"""One router per resource; each handler parses, calls a library function, answers."""
