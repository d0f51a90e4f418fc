/* main.c: minipy, a tiny stand-in for a CPython interpreter. */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <stdio.h>
#include <string.h>

void py_finalize(void);
void minipy_trace(const char *event, const char *fmt, ...);

int main(int argc, char **argv)
{
    minipy_trace("start", "");
    const char *path = argc > 1 ? argv[1] : "";
    FILE *script = argc > 1 ? fopen(path, "r") : NULL;
    int err = argc > 1 ? errno : ENOENT;
    if (script == NULL) {
        fprintf(stderr, "python: can't open file '%s': [Errno %d] %s\n",
                path, err, strerror(err));
        return 2;
    }
    long lines = 0;
    int c, last = '\n';
    while ((c = fgetc(script)) != EOF) {
        if (c == '\n')
            lines++;
        last = c;
    }
    if (last != '\n')
        lines++;
    fclose(script);
    printf("minipy 0.1: ran %s (%ld line%s)\n", path, lines, lines == 1 ? "" : "s");
    fflush(stdout);
    py_finalize();
    return 0;
}
