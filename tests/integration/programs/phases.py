"""Phases: memory allocated while a module is imported is the import's,
with the line that triggered it; the import system's code called at run
time (a loader compiling source, as compileall does) is the program's own.
Ends with exit status 3."""
import importlib.machinery
import os
import sys
import tempfile

import email.message  # MARK:IMPORT

path = os.path.join(tempfile.mkdtemp(), "generated.py")
source = "".join("def f%d(x):\n    return x + %d\n" % (i, i) for i in range(300))
with open(path, "w") as f:
    f.write(source)
loader = importlib.machinery.SourceFileLoader("generated", path)
code = loader.source_to_code(source.encode(), path)  # MARK:LOADER
os.unlink(path)
sys.exit(3)
