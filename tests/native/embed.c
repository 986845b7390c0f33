/* An embedding program that runs the interpreter twice (Py_Initialize,
 * some Python, Py_FinalizeEx, and again); round N keeps 500 blocks of
 * N x 1000 bytes at line 1, and says whether pymem's control file announces
 * the process (so that `pymem snapshot` reaches it in both lifetimes). Built
 * by the integration tests against a shared libpython. */
#include <Python.h>
#include <stdio.h>

int main(void)
{
    for (int round = 1; round <= 2; round++) {
        char code[512];
        snprintf(code, sizeof code,
                 "keep = [bytes(%d) for _ in range(500)]\n"
                 "import os\n"
                 "control = os.path.join(os.environ.get('TMPDIR') or '/tmp', 'pymem-%%d' %% os.getuid())\n"
                 "print('round', len(keep), 'announced', os.path.exists('%%s/%%d.capture' %% (control, os.getpid())))\n",
                 round * 1000);
        Py_Initialize();
        PyRun_SimpleString(code);
        if (Py_FinalizeEx() < 0)
            return 1;
    }
    return 0;
}
