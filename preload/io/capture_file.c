/*
 * capture_file: the capture file itself (contract in capture_file.h). Every
 * function runs with the writer's lock held, in the writer thread or in a
 * thread flushing its full ring or ending the capture; memory from rawmem
 * only, warnings through write(2).
 */
#define _GNU_SOURCE
#include "base/warn.h"
#include "io/capture_file.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#define ZSTD_STATIC_LINKING_ONLY /* ZSTD_createCCtx_advanced, ZSTD_customMem (stable since 1.3) */
#include <zstd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "pymem/env.h"
#include "io/control.h"
#include "pymem/encode.h"
#include "base/rawmem.h"
#include "base/runstate.h"

#define HIGH_FD 900
/* A followed child's capture is created at its first pass after this long
 * (a fork that execs at once leaves none). */
#define CHILD_CREATE_DELAY_NS 50000000u

static struct {
    int fd;
    ZSTD_CCtx *zctx; /* NULL: chunks are written as they are (PYMEM_COMPRESS=0) */
    void *zbuf;      /* the last compressed chunk */
    size_t zbuf_cap;
    dev_t dev; /* identity of the capture file, checked before each write */
    ino_t ino;
    char path[4096];
    char abs_path[4096 + 4096]; /* the capture by absolute path, to open it again */
    bool warned;
    bool ended_by_exit;  /* the capture ended at exit: its status may follow */
    bool pending;        /* a child's capture, created at its first event */
    uint64_t create_after_ns; /* ... but not by a periodic pass before this */
    uint8_t meta[65536]; /* META payload kept until the file exists */
    char tmpdir[4096];    /* $TMPDIR, read at open: where the control channel lives */
    size_t meta_len;
} F = {.fd = -1};

const char *pm_file_path(void)
{
    return F.path;
}

static void warn_failure(const char *what, const char *why)
{
    if (F.warned)
        return;
    F.warned = true;
    pm_warn("cannot %s capture %s: %s; profiling stopped, the program continues", what, F.path, why);
}

/* Writes all of iov, retrying EINTR and partial writes. 0 or an errno.
 * A write past the file size limit raises SIGXFSZ in the writing thread,
 * which may be the program's own (a thread flushing its full ring): it is
 * blocked for the write and the signal pymem caused is taken back, so that
 * the program never dies of pymem's write (Python ignores SIGXFSZ, but only
 * once it has initialised, and pymem records from before). */
static int write_all(struct iovec *iov, int cnt)
{
    sigset_t xfsz, old;
    sigemptyset(&xfsz);
    sigaddset(&xfsz, SIGXFSZ);
    pthread_sigmask(SIG_BLOCK, &xfsz, &old);
    int err = 0;
    while (cnt > 0) {
        ssize_t w = writev(F.fd, iov, cnt);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            err = errno;
            break;
        }
        if (w == 0) {
            err = EIO;
            break;
        }
        while (cnt > 0 && (size_t)w >= iov->iov_len) {
            w -= (ssize_t)iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + w;
            iov->iov_len -= (size_t)w;
        }
    }
    if (err == EFBIG) {
        static const struct timespec now = {0, 0};
        while (sigtimedwait(&xfsz, NULL, &now) == SIGXFSZ)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return err;
}

/* Gives up on the capture: one warning, and the program goes on unprofiled
 * (nor does it answer snapshot requests: its control file goes too).
 * `ours`: the descriptor is still pymem's to close. */
bool pm_file_give_up(const char *what, const char *why, bool ours)
{
    warn_failure(what, why);
    if (ours && F.fd >= 0)
        close(F.fd);
    F.fd = -1;
    pm_run_stop();
    pm_control_close(true);
    return false;
}

/* Moves a descriptor of pymem's out of the low numbers the program expects
 * to get from its own open() calls. */
int pm_file_move_high(int fd)
{
    int high = fcntl(fd, F_DUPFD_CLOEXEC, HIGH_FD);
    if (high < 0)
        return fd;
    close(fd);
    return high;
}

/* The program may close our descriptor (closerange) and reuse its number
 * for a file of its own: never write into that. A descriptor the program
 * closed is replaced by the capture opened again, by its absolute path, if
 * that is still the same file: nothing recorded before the close is lost.
 * The old number is the program's now, and is left alone. */
static bool still_ours(void)
{
    struct stat st;
    if (fstat(F.fd, &st) == 0 && st.st_dev == F.dev && st.st_ino == F.ino)
        return true;
    if (!F.abs_path[0])
        return false;
    int fd = open(F.abs_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) != 0 || st.st_dev != F.dev || st.st_ino != F.ino) {
        close(fd);
        return false;
    }
    F.fd = pm_file_move_high(fd);
    return true;
}

/* zstd's memory comes from rawmem, not from malloc. Its workspace is large
 * enough for glibc to map it, and when glibc frees such a block it raises its
 * mmap and trim thresholds process-wide: the program's heaps would then be
 * trimmed less (measured: 37,201 madvise calls in the 1-thread threads_n run
 * plain, about 400 under pymem, which made it look faster profiled than
 * plain). A header before each block keeps its size for the unmap. */
#define ZSTD_BLOCK_HEADER 64u

static void *zstd_alloc(void *opaque, size_t size)
{
    (void)opaque;
    size_t *block = pm_rawmem_alloc(size + ZSTD_BLOCK_HEADER);
    if (!block)
        return NULL;
    block[0] = size + ZSTD_BLOCK_HEADER;
    return (char *)block + ZSTD_BLOCK_HEADER;
}

static void zstd_free(void *opaque, void *address)
{
    (void)opaque;
    if (!address)
        return;
    size_t *block = (size_t *)(void *)((char *)address - ZSTD_BLOCK_HEADER);
    pm_rawmem_free(block, block[0]);
}

size_t pm_file_compress(const void *p, size_t n)
{
    if (!F.zctx)
        return 0;
    size_t bound = ZSTD_compressBound(n);
    if (bound > F.zbuf_cap) {
        void *grown = F.zbuf ? pm_rawmem_grow(F.zbuf, F.zbuf_cap, bound) : pm_rawmem_alloc(bound);
        if (!grown)
            return 0;
        F.zbuf = grown;
        F.zbuf_cap = bound;
    }
    size_t z = ZSTD_compress2(F.zctx, F.zbuf, bound, p, n);
    /* Beyond the format's ratio a reader refuses the chunk (a decompression
     * bomb looks like that): stored as it is instead. */
    if (ZSTD_isError(z) || z >= n || n > z * (size_t)PM_CHUNK_MAX_RATIO + 4096)
        return 0;
    return z;
}

bool pm_file_write_chunk(uint8_t kind, uint32_t stream, const void *p1, size_t n1, const void *p2, size_t n2,
                         size_t z)
{
    if (F.fd < 0)
        return false;
    if (!still_ours())
        return pm_file_give_up("write", "the program closed or replaced its file descriptor", false);
    uint8_t h[PM_CHUNK_HEADER_SIZE];
    if (z) {
        pm_chunk_header(h, kind, PM_CHUNK_ZSTD, stream, (uint32_t)z, pm_crc32c(0, F.zbuf, z));
        struct iovec iov[2] = {{h, sizeof h}, {F.zbuf, z}};
        int err = write_all(iov, 2);
        return err ? pm_file_give_up("write", strerror(err), true) : true;
    }
    uint32_t crc = pm_crc32c(pm_crc32c(0, p1, n1), p2, n2);
    pm_chunk_header(h, kind, 0, stream, (uint32_t)(n1 + n2), crc);
    struct iovec iov[3] = {{h, sizeof h}, {(void *)p1, n1}, {(void *)p2, n2}};
    int err = write_all(iov, n2 ? 3 : 2);
    return err ? pm_file_give_up("write", strerror(err), true) : true;
}


/* Appends key/value pairs to the META payload kept for file creation. */
static size_t add_meta(const char *const *kv)
{
    size_t start = F.meta_len;
    for (; kv[0] && kv[1]; kv += 2) {
        if (F.meta_len + strlen(kv[0]) + strlen(kv[1]) + 20 > sizeof F.meta)
            break;
        F.meta_len += pm_encode_meta_pair(F.meta + F.meta_len, kv[0], kv[1]);
    }
    return start;
}

/* The capture's absolute path, for still_ours(): the program may change
 * directory before it closes pymem's descriptor. */
static void remember_path(void)
{
    char cwd[4096];
    if (F.path[0] == '/')
        snprintf(F.abs_path, sizeof F.abs_path, "%s", F.path);
    else if (getcwd(cwd, sizeof cwd))
        snprintf(F.abs_path, sizeof F.abs_path, "%s/%s", cwd, F.path);
    else
        F.abs_path[0] = 0;
}

/* Header and META kept so far, into F.fd. */
static bool write_start(void)
{
    F.fd = pm_file_move_high(F.fd);
    struct stat st;
    if (fstat(F.fd, &st) == 0) {
        F.dev = st.st_dev;
        F.ino = st.st_ino;
    }
    remember_path();
    pm_control_open(F.tmpdir, F.abs_path);
    uint8_t h[PM_FILE_HEADER_SIZE];
    pm_file_header(h);
    struct iovec iov = {h, sizeof h};
    int err = write_all(&iov, 1);
    if (err)
        return pm_file_give_up("write", strerror(err), true);
    return pm_file_write_chunk(PM_CHUNK_META, 0, F.meta, F.meta_len, NULL, 0, 0);
}

/* A child's capture appears whole or not at all: written unnamed (O_TMPFILE)
 * and linked in under its name, or a numbered variant of it when an exec'd
 * image that kept the pid took the name first. Returns 1 done, 0 when
 * O_TMPFILE or linking is not available here, -1 on failure. */
static int create_linked(void)
{
    char dir[sizeof F.path];
    snprintf(dir, sizeof dir, "%s", F.path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = 0;
    else
        snprintf(dir, sizeof dir, ".");
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
    if (fd < 0)
        return 0;
    F.fd = fd;
    if (!write_start())
        return -1;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", F.fd);
    int stem = pm_capture_stem(F.path);
    char name[sizeof F.path];
    snprintf(name, sizeof name, "%s", F.path);
    for (int i = 2; i < 100; i++) {
        if (linkat(AT_FDCWD, proc, AT_FDCWD, name, AT_SYMLINK_FOLLOW) == 0) {
            memcpy(F.path, name, sizeof name);
            remember_path();
            return 1;
        }
        if (errno != EEXIST)
            break;
        snprintf(name, sizeof name, PM_CAPTURE_VARIANT_NAME, stem, F.path, i);
    }
    close(F.fd);
    F.fd = -1;
    return errno == EEXIST ? -1 : 0;
}

/* Creates the file named in F.path and writes the header and the META kept
 * so far. A followed child's goes through create_linked(). */
static bool create_now(void)
{
    bool child = F.pending;
    F.pending = false;
    if (child) {
        int rc = create_linked();
        if (rc < 0)
            return pm_file_give_up("create", strerror(errno), true);
        if (rc > 0)
            return true;
    }
    F.fd = open(F.path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (F.fd < 0)
        return pm_file_give_up("create", strerror(errno), false);
    return write_start();
}

int pm_file_open(const char *path, const char *const *kv, bool child)
{
    snprintf(F.path, sizeof F.path, "%s", path);
    /* Read here, while no other thread runs (load time, or a fork's child):
     * getenv races with a program changing its environment. */
    const char *dir = getenv("TMPDIR");
    snprintf(F.tmpdir, sizeof F.tmpdir, "%s", dir && *dir ? dir : "/tmp");
    F.meta_len = 0;
    add_meta(kv);
    /* PYMEM_COMPRESS: zstd level of event chunks, 0 for none (default 1:
     * level 3 saves a tenth more and takes twice the writer's time). */
    const char *level = getenv(PM_ENV_COMPRESS);
    int zlevel = level && *level ? atoi(level) : 1;
    static const ZSTD_customMem zstd_mem = {zstd_alloc, zstd_free, NULL};
    if (zlevel > 0 && !F.zctx && (F.zctx = ZSTD_createCCtx_advanced(zstd_mem)) != NULL)
        ZSTD_CCtx_setParameter(F.zctx, ZSTD_c_compressionLevel, zlevel > 19 ? 19 : zlevel);
    if (zlevel <= 0 && F.zctx) {
        ZSTD_freeCCtx(F.zctx);
        F.zctx = NULL;
    }
    F.pending = true;
    F.create_after_ns = pm_monotonic_ns() + CHILD_CREATE_DELAY_NS;
    if (child)
        return 0;
    F.pending = false;
    return create_now() ? 0 : EIO;
}

bool pm_file_pending(void)
{
    return F.pending;
}

bool pm_file_is_open(void)
{
    return F.fd >= 0;
}

bool pm_file_create_due(bool may_wait, bool *wait)
{
    *wait = false;
    if (!F.pending)
        return true;
    if (may_wait && pm_monotonic_ns() < F.create_after_ns) {
        *wait = true;
        return true;
    }
    return create_now();
}

void pm_file_meta(const char *key, const char *value)
{
    const char *kv[] = {key, value, NULL};
    size_t start = add_meta(kv);
    if (F.fd >= 0)
        pm_file_write_chunk(PM_CHUNK_META, 0, F.meta + start, F.meta_len - start, NULL, 0, 0);
}

void pm_file_close(bool by_exit)
{
    if (F.fd >= 0)
        close(F.fd);
    F.fd = -1;
    F.ended_by_exit = by_exit;
}

bool pm_file_reopen(void)
{
    if (F.fd >= 0 || !F.abs_path[0])
        return false;
    F.fd = open(F.abs_path, O_WRONLY | O_APPEND | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (F.fd >= 0 && (fstat(F.fd, &st) != 0 || st.st_dev != F.dev || st.st_ino != F.ino)) {
        close(F.fd);
        F.fd = -1;
    }
    if (F.fd < 0)
        return false;
    F.fd = pm_file_move_high(F.fd);
    F.ended_by_exit = false;
    return true;
}

void pm_file_exit_status(int status, uint64_t after_end)
{
    if (!F.ended_by_exit || !F.path[0])
        return;
    F.ended_by_exit = false;
    /* The descriptor was closed with the capture (the program may close or
     * reuse any descriptor while it finalises): the file is opened again,
     * and written only if it is still the capture (the program may have
     * changed directory since, and the path be relative). */
    int fd = open(F.path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return;
    struct stat st;
    if (fstat(fd, &st) == 0 && st.st_dev == F.dev && st.st_ino == F.ino) {
        char value[16], missed[24];
        snprintf(value, sizeof value, "%d", status);
        snprintf(missed, sizeof missed, "%llu", (unsigned long long)after_end);
        const char *kv[] = {PM_META_EXIT_STATUS, value, after_end ? PM_META_AFTER_END : NULL, missed, NULL};
        size_t start = add_meta(kv);
        F.fd = fd;
        pm_file_write_chunk(PM_CHUNK_META, 0, F.meta + start, F.meta_len - start, NULL, 0, 0);
        F.fd = -1;
    }
    close(fd);
}

void pm_file_reset_after_fork(void)
{
    if (F.fd >= 0)
        close(F.fd);
    F.fd = -1;
    F.path[0] = 0;
    F.warned = false;
    F.pending = false;
    F.meta_len = 0;
}
