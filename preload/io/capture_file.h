/*
 * capture_file: the file a capture is written to, below the writer (which
 * decides what goes in it and when; writer.h). Created with mode 0600,
 * O_EXCL and never through a symlink; a followed child's is written unnamed
 * (O_TMPFILE) and linked in whole, under a numbered variant of its name if
 * an exec'd image that kept the pid took the name first. Before each write
 * the descriptor is checked to still be the capture (a program may close
 * or reuse any descriptor); one closed by the program is replaced by the
 * file opened again by its absolute path. Chunks carry their CRC and are
 * zstd-compressed on request. A write that fails gives up: one warning on
 * stderr, recording stops, the program goes on.
 * Every function is called with the writer's lock held.
 */
#ifndef PM_CAPTURE_FILE_H
#define PM_CAPTURE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Keeps the path and the META pairs (key, value, ..., NULL), and creates
 * the file now, or for a followed child (`child`) when it first has
 * something to write. 0, or an errno value. */
int pm_file_open(const char *path, const char *const *kv, bool child);
/* Appends a META chunk with one more pair (kept for a file not made yet). */
void pm_file_meta(const char *key, const char *value);
/* A followed child's file is created here, unless `may_wait` and it is
 * within its first 50 ms (then *wait is set: leave the data where it is).
 * False when the file cannot be created (given up). */
bool pm_file_create_due(bool may_wait, bool *wait);
bool pm_file_pending(void);
bool pm_file_is_open(void);

/* Compresses `n` bytes into one zstd frame held by the file; its size, or 0
 * to write the chunk as it is (compression off, or it would not pay). */
size_t pm_file_compress(const void *p, size_t n);
/* Writes one chunk of up to two payload segments, or, when `z` is not 0,
 * the frame pm_file_compress() made. False when the capture is given up. */
bool pm_file_write_chunk(uint8_t kind, uint32_t stream, const void *p1, size_t n1, const void *p2, size_t n2,
                         size_t z);
/* Gives up on the capture: one warning, recording stops (`ours`: the
 * descriptor is still pymem's to close). Returns false. */
bool pm_file_give_up(const char *what, const char *why, bool ours);

/* The capture ended (`by_exit`: at exit, so that its status may follow). */
void pm_file_close(bool by_exit);
/* After an exec that failed: the same file opened again, if it still is. */
bool pm_file_reopen(void);
/* Appends the exit status after an end at exit (pm_writer_exit_status). */
void pm_file_exit_status(int status, uint64_t after_end);
void pm_file_reset_after_fork(void);

const char *pm_file_path(void);
/* Moves a descriptor of pymem's out of the low numbers the program expects
 * to get from its own open() calls (to 900 or above). */
int pm_file_move_high(int fd);

#endif
