from nodegc.cli import entry

entry()
