#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "path.h"

void kms_journal_name(char *buf, size_t len, int shard_index, int shard_count)
{
    if (shard_count > 0)
        snprintf(buf, len, ".kmseg-journal.shard-%d-of-%d.csv", shard_index,
                 shard_count);
    else
        snprintf(buf, len, ".kmseg-journal.csv");
}

/* All of buf, or -1 with errno set. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

kms_status kms_journal_open(kms_journal *j, const char *dir, const char *name,
                            long keep, bool timings, kms_error *err)
{
    static const char header[] = KMS_SUMMARY_HEADER "\n";
    memset(j, 0, sizeof *j);
    j->timings = timings;
    kms_path_join(j->path, sizeof j->path, dir, name);
    pthread_mutex_init(&j->lock, NULL);
    j->fd = open(j->path, O_WRONLY | O_CREAT | O_CLOEXEC, 0666);
    if (j->fd < 0 || ftruncate(j->fd, keep) != 0 ||
        lseek(j->fd, keep, SEEK_SET) < 0 ||
        (keep == 0 && write_all(j->fd, header, sizeof header - 1) != 0) ||
        fdatasync(j->fd) != 0) {
        kms_status st = kms_error_set(err, KMS_ERR_IO, j->path, 0, NULL,
                                      "cannot write the journal: %s",
                                      strerror(errno));
        if (j->fd >= 0)
            close(j->fd);
        j->fd = -1;
        pthread_mutex_destroy(&j->lock);
        return st;
    }
    j->synced_ms = kms_now_ms();
    return KMS_OK;
}

void kms_journal_append(kms_journal *j, const kms_row *r)
{
    char *buf = NULL;
    size_t len = 0;
    if (j->fd < 0 || kms_summary_format_row(r, j->timings, &buf, &len, NULL) != KMS_OK)
        return;
    pthread_mutex_lock(&j->lock);
    /* one write per record: a kill leaves at most the last one torn. After
     * a failed write (a full disk) nothing more is appended, so a torn
     * record stays the last one, which a resume drops. The write alone
     * survives kill -9; a power cut needs the fdatasync, which costs
     * 3-15 ms of wall time on a busy disk, more than a slice's whole work:
     * rows are synced at most KMS_JOURNAL_SYNC_MS apart (and at close), so
     * a power cut loses at most that much of finished work, which
     * --resume runs again. */
    if (!j->warned) {
        double now = kms_now_ms();
        bool sync = now - j->synced_ms >= KMS_JOURNAL_SYNC_MS;
        if (write_all(j->fd, buf, len) != 0 || (sync && fdatasync(j->fd) != 0)) {
            j->warned = true;
            fprintf(stderr, "kmseg: warning: %s: %s; a crash now loses the rows "
                            "finished since\n", j->path, strerror(errno));
        } else if (sync) {
            j->synced_ms = now;
            j->syncs++;
        }
        j->unsynced = !sync;
    }
    pthread_mutex_unlock(&j->lock);
    free(buf);
}

/* fsync of path (a file or a folder); errors are not worth stopping for:
 * the journal is only removed once this succeeded. */
static int sync_path(const char *path, int flags)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | flags);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

void kms_journal_close(kms_journal *j, const char *dir, const char *summary,
                       bool summary_written)
{
    if (j->fd < 0)
        return;
    if (j->unsynced && !j->warned && fdatasync(j->fd) == 0)
        j->syncs++; /* the last rows, should the summary not follow */
    close(j->fd);
    j->fd = -1;
    pthread_mutex_destroy(&j->lock);
    char path[4352];
    kms_path_join(path, sizeof path, dir, summary);
    /* the summary's rename must be on disk before the journal goes, or a
     * power cut could lose both */
    if (summary_written && sync_path(path, 0) == 0 &&
        sync_path(dir, O_DIRECTORY) == 0)
        unlink(j->path);
}

/* --- the output folder's lock ---------------------------------------------- */

/* 0, or -1 with *held the conflicting lock (F_UNLCK if its holder just
 * left), or -2 with errno when the system cannot lock at all. */
static int set_lock(int fd, short type, off_t start, off_t len, struct flock *held)
{
    struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = start,
                       .l_len = len};
    if (fcntl(fd, F_SETLK, &fl) == 0)
        return 0;
    if (errno != EAGAIN && errno != EACCES)
        return -2;
    *held = fl;
    if (fcntl(fd, F_GETLK, held) != 0)
        held->l_type = F_UNLCK;
    return -1;
}

kms_status kms_dir_lock_take(kms_dir_lock *l, const char *dir, int shard_index,
                             int shard_count, kms_error *err)
{
    kms_path_join(l->path, sizeof l->path, dir, ".kmseg.lock");
    /* a few rounds: the holder may be leaving, and the last one out removes
     * the file we opened */
    for (int round = 0; round < 50; round++) {
        l->fd = open(l->path, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
        if (l->fd < 0)
            return kms_error_set(err, KMS_ERR_IO, l->path, 0, NULL,
                                 "cannot create the lock file: %s",
                                 strerror(errno));
        struct flock held = {0};
        int rc = set_lock(l->fd, shard_count > 0 ? F_RDLCK : F_WRLCK, 0, 1, &held);
        if (rc == 0 && shard_count > 0)
            rc = set_lock(l->fd, F_WRLCK, 1 + shard_index, 1, &held);
        if (rc == -2) {
            kms_status st = kms_error_set(err, KMS_ERR_IO, l->path, 0, NULL,
                                          "cannot lock: %s", strerror(errno));
            close(l->fd);
            l->fd = -1;
            return st;
        }
        struct stat a, b;
        if (rc == 0 && fstat(l->fd, &a) == 0 && stat(l->path, &b) == 0 &&
            a.st_dev == b.st_dev && a.st_ino == b.st_ino)
            return KMS_OK;
        close(l->fd); /* drops whatever part we got */
        l->fd = -1;
        if (rc != 0 && held.l_type != F_UNLCK)
            return kms_error_set(err, KMS_ERR_IO, dir, 0, NULL,
                                 "another kmseg run (pid %ld) is writing here",
                                 (long)held.l_pid);
        nanosleep(&(struct timespec){.tv_nsec = 10000000}, NULL);
    }
    return kms_error_set(err, KMS_ERR_IO, l->path, 0, NULL,
                         "cannot take the lock (it keeps changing hands)");
}

void kms_dir_lock_release(kms_dir_lock *l)
{
    if (l->fd < 0)
        return;
    /* only when no other run (shard) holds any part of it */
    struct flock fl = {.l_type = F_WRLCK, .l_whence = SEEK_SET};
    if (fcntl(l->fd, F_SETLK, &fl) == 0)
        unlink(l->path);
    close(l->fd);
    l->fd = -1;
}
