/*
 * thread: the definition of pymem's per-thread state (contract in thread.h).
 */
#include "base/thread.h"

#include <stddef.h>

__thread struct pm_thread pm_thread __attribute__((tls_model("initial-exec")));

void pm_thread_reset_after_fork(void)
{
    pm_thread.buf = NULL;
    pm_thread.recording = 0;
}
