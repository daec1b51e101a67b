/* Files: replacing one atomically, and opening and reading one safely.
 *
 * Replacing (nn__file_replace): the new bytes go to an exclusive temporary
 * file in the target's directory, are flushed and fsync'ed, and the
 * temporary is renamed over the target; then the directory is fsync'ed so
 * the rename survives a power cut. A failure at any point unlinks the
 * temporary, so the target holds either its old bytes or all of the new.
 *
 * What is replaced: a regular file, or nothing (a new file). A symbolic
 * link to a regular file is followed, so the file it points to is replaced
 * and the link stays, as editors do. Anything else (a directory, a FIFO, a
 * device, a socket, a link to one of those or a dangling link) is refused.
 *
 * Temporary names: ".nn.tmp.<tag>.<pid>.<n>", where tag is a 64-bit hash
 * of the target's name, pid the writer's process and n a counter. The name
 * has at most 46 bytes whatever the target's, so it fits wherever the
 * target's own name does.
 *
 * Stale temporaries: a writer killed mid-save (SIGKILL, a power cut) leaves
 * its temporary behind. Every save of a target first removes the stale
 * temporaries of that same target (same tag). The writer holds an
 * exclusive flock() on its temporary from just after creating it until it
 * is renamed or removed, and the kernel drops the lock when the process
 * dies. A temporary is stale when both:
 *  - the process named in it does not exist (kill(pid, 0) fails with
 *    ESRCH; that covers the instant between creation and locking), and
 *  - its lock can be taken (a writer on another machine or in another pid
 *    namespace sharing the directory holds it).
 * A live writer's temporary is therefore not removed (short of a file
 * system without flock, shared with another pid namespace, in the instant
 * between creation and locking). A stale temporary whose pid was reused
 * by another process stays until that process ends. */
#include "nn_internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define TEMP_PREFIX ".nn.tmp."

static const char *kind_of(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "a special file";
}

/* ---------------- what to replace ---------------- */

/* A copy of the path of the file to write: `path` itself, or for a
 * symbolic link the regular file it leads to. */
static nn_status resolve(const char *path, const char *who, char **out)
{
    struct stat st;
    char real[PATH_MAX];
    const char *target = path;
    /* A missing name (or directory) is reported when the temporary cannot
     * be created next to it. */
    bool exists = lstat(path, &st) == 0;
    if (exists && S_ISLNK(st.st_mode)) {
        if (stat(path, &st) != 0)
            return nn__fail(NN_ERR_IO,
                            "%s: cannot replace '%s': it is a symbolic link "
                            "that leads nowhere (%s)",
                            who, path, strerror(errno));
        if (!S_ISREG(st.st_mode))
            return nn__fail(NN_ERR_IO,
                            "%s: cannot replace '%s': it is a symbolic link "
                            "to %s, not to a regular file",
                            who, path, kind_of(st.st_mode));
        if (!realpath(path, real))
            return nn__fail(NN_ERR_IO, "%s: cannot follow the link '%s': %s",
                            who, path, strerror(errno));
        target = real;
    } else if (exists && !S_ISREG(st.st_mode)) {
        return nn__fail(NN_ERR_IO,
                        "%s: cannot replace '%s': it is %s, not a regular "
                        "file",
                        who, path, kind_of(st.st_mode));
    }
    size_t n = strlen(target) + 1;
    *out = nn__alloc(n);
    if (!*out) return NN_ERR_NOMEM;
    memcpy(*out, target, n);
    return NN_OK;
}

/* Splits `full` in place into its directory and its last name. */
static void split(char *full, const char **dir, const char **base)
{
    char *slash = strrchr(full, '/');
    if (!slash) {
        *dir = ".";
        *base = full;
    } else {
        *base = slash + 1;
        *dir = slash == full ? "/" : full;
        *slash = '\0';
    }
}

/* ---------------- temporaries ---------------- */

/* FNV-1a: names the target in its temporaries' names. */
static uint64_t name_tag(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
    return h;
}

/* The pid in "<pid>.<n>", or 0 when it is not one. */
static long temp_pid(const char *rest)
{
    char *end = NULL;
    errno = 0;
    long pid = strtol(rest, &end, 10);
    if (errno || end == rest || *end != '.' || pid <= 0 || pid > INT_MAX)
        return 0;
    return pid;
}

static bool process_gone(long pid)
{
    return pid != (long)getpid() && kill((pid_t)pid, 0) != 0 &&
           errno == ESRCH;
}

/* Removes `name` if no writer holds its lock and it is still the file
 * whose lock we took. */
static void remove_if_unlocked(int dirfd, const char *name)
{
    int fd = openat(dirfd, name,
                    O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) return;
    struct stat held, now;
    if (fstat(fd, &held) == 0 && S_ISREG(held.st_mode) &&
        flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        fstatat(dirfd, name, &now, AT_SYMLINK_NOFOLLOW) == 0 &&
        now.st_dev == held.st_dev && now.st_ino == held.st_ino)
        unlinkat(dirfd, name, 0);
    close(fd);
}

/* Best effort: a save succeeds even when the directory cannot be read. */
static void remove_stale(int dirfd, const char *prefix)
{
    int fd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0) close(fd);
        return;
    }
    size_t n = strlen(prefix);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, prefix, n) != 0) continue;
        long pid = temp_pid(e->d_name + n);
        if (pid && process_gone(pid)) remove_if_unlocked(dirfd, e->d_name);
    }
    closedir(d);
}

static atomic_uint temp_counter;

/* Creates the temporary exclusively (honouring the umask) and locks it. */
static nn_status create_temp(int dirfd, const char *prefix, char *name,
                             size_t cap, int *fd)
{
    for (int attempt = 0; attempt < 100; attempt++) {
        snprintf(name, cap, "%s%ld.%u", prefix, (long)getpid(),
                 atomic_fetch_add(&temp_counter, 1));
        *fd = openat(dirfd, name,
                     O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
                     0666);
        if (*fd >= 0) {
            /* Where locks are unsupported the pid alone marks it live. */
            flock(*fd, LOCK_EX | LOCK_NB);
            return NN_OK;
        }
        if (errno != EEXIST) break;
    }
    return NN_ERR_IO;
}

/* Runs the writer on a stream over a duplicate of fd (fd keeps the lock
 * after the stream is closed), then makes the bytes durable. */
static nn_status fill_temp(int fd, const char *path, const char *who,
                           nn_file_writer write, void *ctx)
{
    int wfd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    FILE *f = wfd >= 0 ? fdopen(wfd, "wb") : NULL;
    if (!f) {
        int err = errno;
        if (wfd >= 0) close(wfd);
        return nn__fail(NN_ERR_IO, "%s: cannot write '%s': %s", who, path,
                        strerror(err));
    }
    errno = 0;
    nn_status s = write(f, ctx);
    int err = 0;
    if (s == NN_OK && (ferror(f) || fflush(f) != 0)) err = errno ? errno : EIO;
    if (fclose(f) != 0 && s == NN_OK && !err) err = errno;
    if (s == NN_OK && !err && fsync(fd) != 0) err = errno;
    if (s == NN_OK && err)
        s = nn__fail(NN_ERR_IO, "%s: cannot write '%s': %s", who, path,
                     strerror(err));
    return s;
}

/* The temporary is created, filled and renamed in the target's directory,
 * through its descriptor, so no path longer than the user's is formed. */
static nn_status replace_in(int dirfd, const char *base, const char *path,
                            const char *who, nn_file_writer write, void *ctx)
{
    char prefix[48], tmp[96];
    snprintf(prefix, sizeof prefix, TEMP_PREFIX "%016llx.",
             (unsigned long long)name_tag(base));
    remove_stale(dirfd, prefix);
    int fd = -1;
    if (create_temp(dirfd, prefix, tmp, sizeof tmp, &fd) != NN_OK)
        return nn__fail(NN_ERR_IO, "%s: cannot create '%s': %s", who, path,
                        strerror(errno));
    nn_status s = fill_temp(fd, path, who, write, ctx);
    if (s == NN_OK && renameat(dirfd, tmp, dirfd, base) != 0)
        s = nn__fail(NN_ERR_IO, "%s: cannot replace '%s': %s", who, path,
                     strerror(errno));
    if (s != NN_OK)
        unlinkat(dirfd, tmp, 0);
    else
        fsync(dirfd); /* best effort: the data itself is already safe */
    close(fd);
    return s;
}

nn_status nn__file_replace(const char *path, const char *who,
                           nn_file_writer write, void *ctx)
{
    char *full = NULL;
    NN_TRY(resolve(path, who, &full));
    const char *dir, *base;
    split(full, &dir, &base);
    nn_status s = NN_OK;
    int dirfd = -1;
    if (!base[0])
        s = nn__fail(NN_ERR_IO, "%s: cannot create '%s': it names a directory",
                     who, path);
    else if ((dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0)
        s = nn__fail(NN_ERR_IO, "%s: cannot create '%s': %s", who, path,
                     strerror(errno));
    else
        s = replace_in(dirfd, base, path, who, write, ctx);
    if (dirfd >= 0) close(dirfd);
    nn__free(full);
    return s;
}

/* ---------------- reading ---------------- */

nn_status nn__file_open(const char *path, const char *who, int *fd,
                        uint64_t *size)
{
    /* O_NONBLOCK: opening a FIFO would otherwise wait for a writer. It
     * changes nothing for the regular files that pass the check below. */
    *fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    NN_CHECK(*fd >= 0, NN_ERR_IO, "%s: cannot open '%s': %s", who, path,
             strerror(errno));
    struct stat st;
    nn_status s = NN_OK;
    if (fstat(*fd, &st) != 0)
        s = nn__fail(NN_ERR_IO, "%s: cannot stat '%s': %s", who, path,
                     strerror(errno));
    else if (!S_ISREG(st.st_mode))
        s = nn__fail(NN_ERR_IO, "%s: '%s' is %s, not a regular file", who,
                     path, kind_of(st.st_mode));
    if (s != NN_OK) {
        close(*fd);
        *fd = -1;
        return s;
    }
    *size = (uint64_t)st.st_size;
    return NN_OK;
}

nn_status nn__file_read(int fd, const char *path, const char *who,
                        uint8_t *buf, size_t n, size_t *got)
{
    size_t done = 0;
    while (done < n) {
        ssize_t k = read(fd, buf + done, n - done);
        if (k < 0 && errno == EINTR) continue;
        NN_CHECK(k >= 0, NN_ERR_IO, "%s: cannot read '%s': %s", who, path,
                 strerror(errno));
        if (k == 0) break;
        done += (size_t)k;
    }
    *got = done;
    return NN_OK;
}

static nn_status read_exact(int fd, const char *path, const char *who,
                            uint8_t *buf, size_t n)
{
    size_t got = 0;
    NN_TRY(nn__file_read(fd, path, who, buf, n, &got));
    NN_CHECK(got == n, NN_ERR_IO, "%s: '%s' shrank while it was read", who,
             path);
    return NN_OK;
}

/* "4 GiB", "100 MiB" or "1000 bytes". */
static void limit_text(uint64_t max, char *out, size_t cap)
{
    if (max >= (1u << 30) && max % (1u << 30) == 0)
        snprintf(out, cap, "%llu GiB", (unsigned long long)(max >> 30));
    else if (max >= (1u << 20) && max % (1u << 20) == 0)
        snprintf(out, cap, "%llu MiB", (unsigned long long)(max >> 20));
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)max);
}

static nn_status check_size(uint64_t size, uint64_t max, const char *path,
                            const char *who)
{
    char limit[32];
    limit_text(max, limit, sizeof limit);
    NN_CHECK(size <= max && size <= SIZE_MAX, NN_ERR_FORMAT,
             "%s: '%s' is %llu bytes, more than the limit of %s", who, path,
             (unsigned long long)size, limit);
    return NN_OK;
}

/* The rest of the file, after the `n` bytes of `head`, into a buffer of
 * the whole size. */
static nn_status read_rest(int fd, const char *path, const char *who,
                           const uint8_t *head, size_t n, size_t size,
                           uint8_t **out)
{
    uint8_t *buf = nn__alloc(size ? size : 1);
    if (!buf) return NN_ERR_NOMEM;
    memcpy(buf, head, n);
    nn_status s = read_exact(fd, path, who, buf + n, size - n);
    if (s != NN_OK) {
        nn__free(buf);
        return s;
    }
    *out = buf;
    return NN_OK;
}

nn_status nn__file_read_all(const char *path, const char *who, uint64_t max,
                            const nn_file_head *head, uint8_t **out,
                            size_t *size)
{
    int fd = -1;
    uint64_t n = 0;
    NN_TRY(nn__file_open(path, who, &fd, &n));
    uint8_t first[NN_FILE_HEAD_MAX];
    size_t h = head ? head->bytes : 0;
    if (h > sizeof first) h = sizeof first;
    if (h > n) h = (size_t)n;
    nn_status s = check_size(n, max, path, who);
    if (s == NN_OK) s = read_exact(fd, path, who, first, h);
    if (s == NN_OK && head) s = head->check(first, h, n, head->ctx);
    if (s == NN_OK) s = read_rest(fd, path, who, first, h, (size_t)n, out);
    close(fd);
    if (s == NN_OK) *size = (size_t)n;
    return s;
}
