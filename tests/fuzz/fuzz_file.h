/*
 * fuzz_file.h: hands a fuzz input to code that only opens paths (the data readers, the model
 * loader). The bytes go into an anonymous in-memory file (memfd_create), reachable as
 * /proc/self/fd/N, so nothing touches the disk and parallel fuzzing jobs cannot collide.
 * Header-only (static functions) so each target stays one translation unit.
 */
#ifndef ED_FUZZ_FILE_H
#define ED_FUZZ_FILE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

typedef struct {
    int fd;
    char path[64];
} fz_file;

/* Creates an empty in-memory file; aborts if the system cannot (a harness failure, not a bug). */
static void fz_file_init(fz_file *f, const char *name)
{
    f->fd = memfd_create(name, MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("fuzz: memfd_create");
        abort();
    }
    snprintf(f->path, sizeof f->path, "/proc/self/fd/%d", f->fd);
}

/* Replaces the file's contents with data[0..size). */
static void fz_file_set(fz_file *f, const uint8_t *data, size_t size)
{
    if (ftruncate(f->fd, 0) != 0) {
        perror("fuzz: ftruncate");
        abort();
    }
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(f->fd, data + done, size - done, (off_t)done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            perror("fuzz: pwrite");
            abort();
        }
        done += (size_t)w;
    }
}

#endif
