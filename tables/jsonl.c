/* JSONL file primitives (blocking; threadpool, startup and tests only). See jsonl.h. */
#include "tables/jsonl.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yajl/yajl_parse.h>

#define READ_CHUNK (256u << 10)

bool tb_jsonl_valid(gw_str_t line)
{
    size_t i = 0;
    while (i < line.len && (line.base[i] == ' ' || line.base[i] == '\t' || line.base[i] == '\r'))
        i++;
    if (i == line.len || line.base[i] != '{')
        return false;
    /* No callbacks: yajl only checks the grammar (and UTF-8). Its parser is iterative, so deep
     * nesting in a corrupt line costs heap, not stack. */
    yajl_handle h = yajl_alloc(NULL, NULL, NULL);
    if (!h)
        return false;
    yajl_status st = yajl_parse(h, (const unsigned char *)line.base, line.len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);
    return st == yajl_status_ok;
}

int tb_jsonl_read(const char *path, uint64_t offset, size_t max_lines, size_t max_bytes, tb_jsonl_line_cb cb,
                  void *ud, tb_jsonl_stats_t *st)
{
    memset(st, 0, sizeof(*st));
    st->end = offset;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) {
            st->eof = true;
            return 0;
        }
        return -errno;
    }
    gw_buf_t b; /* bytes from st->end onward that are not consumed yet */
    gw_buf_init(&b);
    uint64_t pos = offset; /* file offset of the next read */
    size_t scanned = 0;    /* bytes of b already known to hold no '\n' */
    int rc = 0;
    bool stop = false;
    while (!stop) {
        char *nl = b.len > scanned ? memchr(b.base + scanned, '\n', b.len - scanned) : NULL;
        if (!nl) {
            scanned = b.len;
            char *w = gw_buf_reserve(&b, READ_CHUNK);
            ssize_t k = pread(fd, w, READ_CHUNK, (off_t)pos);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                rc = -errno;
                break;
            }
            if (k == 0) { /* end of file: what is left has no '\n' and is a torn line */
                st->torn_bytes = b.len;
                st->eof = true;
                break;
            }
            b.len += (size_t)k;
            pos += (uint64_t)k;
            continue;
        }
        size_t n = (size_t)(nl - b.base);
        gw_str_t line = gw_str_n(b.base, n);
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++)
            blank = line.base[i] == ' ' || line.base[i] == '\t' || line.base[i] == '\r';
        if (!blank) {
            if (tb_jsonl_valid(line)) {
                st->lines++;
                if (cb && cb(ud, line) != 0)
                    stop = true;
            } else {
                st->invalid++;
            }
        }
        st->end += n + 1;
        gw_buf_consume(&b, n + 1);
        scanned = 0;
        if ((max_lines && st->lines >= max_lines) || (max_bytes && st->end - offset >= max_bytes))
            stop = true;
    }
    if (stop && rc == 0 && b.len == 0) {
        /* Stopped exactly at a line end: tell the caller whether the file has more. */
        struct stat sb;
        if (fstat(fd, &sb) == 0 && (uint64_t)sb.st_size <= st->end)
            st->eof = true;
    }
    gw_buf_dispose(&b);
    close(fd);
    return rc;
}

int tb_jsonl_mkdir_p(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc < 0 && errno != EEXIST)
            return -errno;
    }
    if (mkdir(path, 0755) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t k = write(fd, p, n);
        if (k < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* A new directory entry is durable only once the directory itself is synced (fsync(2) NOTES). */
static int sync_parent(const char *path)
{
    char dir[PATH_MAX];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else
        snprintf(dir, sizeof(dir), "%.*s", (int)(slash == path ? 1 : slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int rc = fsync(fd) < 0 ? -errno : 0;
    close(fd);
    return rc;
}

int tb_jsonl_append(const char *path, const char *data, size_t len, gw_fsync_t mode, uint64_t *size_after,
                    bool *repaired)
{
    if (repaired)
        *repaired = false;
    bool created = false;
    int fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC); /* read: the last byte */
    if (fd < 0 && errno == ENOENT) {
        fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
        created = fd >= 0;
    }
    if (fd < 0)
        return -errno;
    int rc = 0;
    struct stat sb;
    if (fstat(fd, &sb) < 0) {
        rc = -errno;
        goto fail;
    }
    uint64_t size = (uint64_t)sb.st_size;
    if (size > 0) {
        char last;
        ssize_t k = pread(fd, &last, 1, (off_t)(size - 1));
        if (k < 0) {
            rc = -errno;
            goto fail;
        }
        if (k == 1 && last != '\n') {
            /* A previous writer died mid-line: close that line so ours start on a fresh one. */
            if ((rc = write_all(fd, "\n", 1)) < 0)
                goto fail;
            size++;
            if (repaired)
                *repaired = true;
        }
    }
    if ((rc = write_all(fd, data, len)) < 0)
        goto fail;
    size += len;
    if (mode != GW_FSYNC_NONE) {
        if (fdatasync(fd) < 0) {
            rc = -errno;
            goto fail;
        }
        if (created && (rc = sync_parent(path)) < 0)
            goto fail;
    }
    if (size_after)
        *size_after = size;
    close(fd);
    return 0;
fail:
    close(fd);
    return rc;
}
