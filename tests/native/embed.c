/* An embedding program that runs the interpreter twice (Py_Initialize,
 * some Python, Py_FinalizeEx, and again). Built by the integration tests
 * against a shared libpython. */
#include <Python.h>

int main(void)
{
    for (int round = 1; round <= 2; round++) {
        Py_Initialize();
        PyRun_SimpleString("keep = [bytes(1000) for _ in range(500)]\nprint('round', len(keep))\n");
        if (Py_FinalizeEx() < 0)
            return 1;
    }
    return 0;
}
