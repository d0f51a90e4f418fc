"""A generated tree shaped like CPython for the default build recipe's tests.

It has what finbisect's CPython recipe reads and runs: `configure` (a shell
script that records its arguments and environment, counts its runs and writes
a Makefile), `Makefile.pre.in` with the `platform` and `sharedmods` targets,
and `Include/patchlevel.h`. The built `./python` crashes like the bpo-9901
bug from a chosen commit on. Like CPython's, it runs only beside its build
directory's landmarks (Lib/os.py, pybuilddir.txt and the built modules it
names, one of them a link to Modules/ as on 3.12+; Tools/gdb/libpython.py for
gdb), found from its own path, so a stored build runs only if the cache kept
them. Asked to run code (`-c`, as finbisect's build
check does), it hands over to the real Python running the tests; at the
commits in `broken_modules` the build "fails to link" a module: the make log
says so, as 2.7's setup.py does, and the module cannot be imported.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from finbisect.testing.histories import GeneratedHistory
from finbisect.testing.minipy import HistoryBuilder

CONFIGURE = """#!/bin/sh
# A stand-in for CPython's configure; it knows: with_pydebug with_ensurepip
# enable_test_modules enable_gil{extra}
edit={edit}
cache=
args=
for a in "$@"; do
    case "$a" in
        --cache-file=*) cache="${{a#--cache-file=}}" ;;
        *) args="$args $a" ;;
    esac
done
args=$(echo $args)
echo "$args" > config.args
echo "CFLAGS=$CFLAGS MACHDEP=$MACHDEP" > config.env
n=$(cat .configure-count 2>/dev/null || echo 0)
echo $((n + 1)) > .configure-count
# Like autoconf, reuse a cache file's results; note whether they came from this
# very configure script ("same") or another revision's ("other").
if [ -n "$cache" ]; then
    if grep -qx poison "$cache" 2>/dev/null; then  # what autoconf does when CFLAGS changed
        echo "configure: error: \\`CFLAGS' has changed since the previous run" >&2
        exit 1
    fi
    if [ -s "$cache" ]; then
        if grep -qx "ac_cv_fake=$edit" "$cache"; then echo same; else echo other; fi \
            >> .configure-cache-hits
    fi
    echo "ac_cv_fake=$edit" > "$cache"
fi
sed "s|@CONFIG_ARGS@|$args|" Makefile.pre.in > Makefile
"""

MAKEFILE_PRE_IN = """\
python: main.c crash.h
\t$(CC) -o python main.c -DCONFIG_ARGS='"@CONFIG_ARGS@"'
\tmkdir -p build/lib.fake && echo build/lib.fake > pybuilddir.txt
\techo 'build_time_vars = {}' > build/lib.fake/_sysconfigdata_fake.py
\techo 'a built module' > Modules/_fake.so && ln -sf ../../Modules/_fake.so build/lib.fake/_fake.so
\techo "$@" >> compile.log
\tif grep -q '"_' crash.h; then \\
\t  echo "building '_finbisect_broken' extension"; \\
\t  echo "/usr/bin/ld: unrecognized option '-Wall'"; \\
\tfi

platform: python
	echo platform >> targets.log
sharedmods: python
	echo sharedmods >> targets.log
"""

MAIN_C = """\
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "crash.h"
/* CPython's getpath: the build directory's landmarks, beside the executable. */
static int find_landmarks(void) {
    static const char *landmarks[] = {"Lib/os.py", "pybuilddir.txt",
        "build/lib.fake/_sysconfigdata_fake.py", "build/lib.fake/_fake.so",
        "Tools/gdb/libpython.py"};
    char dir[4096], path[4400];
    ssize_t n = readlink("/proc/self/exe", dir, sizeof dir - 1);
    if (n <= 0)
        return 0;
    dir[n] = 0;
    *strrchr(dir, '/') = 0;
    for (size_t i = 0; i < sizeof landmarks / sizeof *landmarks; i++) {
        snprintf(path, sizeof path, "%s/%s", dir, landmarks[i]);
        if (access(path, R_OK) != 0) {
            fprintf(stderr, "Could not find platform independent libraries (%s)\\n", path);
            return 0;
        }
    }
    return 1;
}
int main(int argc, char **argv) {
    if (!find_landmarks())
        return 1;
    if (argc > 2 && strcmp(argv[1], "-c") == 0) {  /* run code: the real Python does */
        char *args[64] = {REAL_PYTHON};
        int n = 1;
        for (int i = 1; i < argc && n < 62; i++)
            args[n++] = argv[i];
        if (BROKEN_MODULE[0])
            args[n++] = BROKEN_MODULE;  /* a module this build could not link */
        args[n] = NULL;
        execv(REAL_PYTHON, args);
        return 127;
    }
    printf("cpython-like built with: %s\\n", CONFIG_ARGS);
    if (CRASH) {
        fprintf(stderr, "Fatal Python error: pthread_mutex_destroy(gil_mutex) failed\\n");
        abort();
    }
    return argc > 1 ? 0 : 2;
}
"""

# Committed files: what running needs (Lib/, gdb's libpython.py) and what it does not.
RUNTIME_SOURCES = {
    "Lib/os.py": "# the stdlib landmark\n" + "x = 1\n" * 200_000,  # big: shared, counted once
    "Lib/json/__init__.py": "",
    "Tools/gdb/libpython.py": "# py-bt\n",
    "Tools/scripts/unused.py": "",
    "Doc/index.rst": "docs\n",
}


def cpython_like_history(
    path: Path,
    *,
    commits: int,
    culprit: int,
    version: tuple[int, int] = (3, 13),
    configure_changes: tuple[int, ...] = (),
    template_changes: tuple[int, ...] = (),
    tsan_from: int | None = None,
    broken_modules: tuple[int, ...] = (),
) -> GeneratedHistory:
    """`commits` commits; `culprit` makes ./python crash at exit; commits in
    `configure_changes` edit `configure`, those in `template_changes` only
    `Makefile.pre.in` (as most Debian patches do); from `tsan_from` it knows TSan; at the
    commits in `broken_modules` a module fails to link (the build check's case)."""
    builder = HistoryBuilder(path)
    files = builder.path
    (files / "Include").mkdir(exist_ok=True)
    (files / "Include" / "patchlevel.h").write_text(
        f"#define PY_MAJOR_VERSION {version[0]}\n#define PY_MINOR_VERSION {version[1]}\n"
        "#define PY_MICRO_VERSION 0\n"
    )
    for name in ("Makefile", "gil.c"):  # minipy's own build is not used here
        (files / name).unlink(missing_ok=True)
    (files / "Makefile.pre.in").write_text(MAKEFILE_PRE_IN)
    (files / "Modules").mkdir(exist_ok=True)
    if version >= (3, 12):  # the Makefile builds the shared modules (sharedmods)
        (files / "Modules" / "Setup.stdlib.in").write_text("_heapq _heapqmodule.c\n")
    else:  # setup.py does; Setup.dist offers a few modules to build in
        (files / "Modules" / "Setup.dist").write_text(
            "posix posixmodule.c\n#time timemodule.c # -lm # time operations\n"
        )
    (files / "main.c").write_text(MAIN_C)
    for name, text in RUNTIME_SOURCES.items():
        (files / name).parent.mkdir(parents=True, exist_ok=True)
        (files / name).write_text(text)
    (files / ".gitignore").write_text(
        "python\nMakefile\nconfig.args\nconfig.env\nconfig.cache\n.configure-*\n*.log\n*.o\n"
        "build/\npybuilddir.txt\nModules/*.so\n"
    )
    shas = []
    configure_edits = 0
    for i in range(commits):
        if i in configure_changes:
            configure_edits += 1
        extra = " with_thread_sanitizer" if tsan_from is not None and i >= tsan_from else ""
        script = CONFIGURE.format(extra=extra, edit=configure_edits)
        (files / "configure").write_text(script)
        (files / "configure").chmod(0o755)
        if i in template_changes:
            with (files / "Makefile.pre.in").open("a") as template:
                template.write(f"# template change {i}\n")
        broken = "_finbisect_broken" if i in broken_modules else ""
        (files / "crash.h").write_text(
            f"#define CRASH {int(i >= culprit)}\n#define REAL_PYTHON {json.dumps(sys.executable)}\n"
            f'#define BROKEN_MODULE "{broken}"\n'
        )
        builder._git("add", "-A")
        shas.append(builder.commit(f"Change {i}", touch="Misc/NEWS"))
    return GeneratedHistory(
        path=builder.path,
        good=shas[0],
        bad=shas[-1],
        culprit=shas[culprit],
        first_parent_culprit=shas[culprit],
        shas=tuple(shas),
        mainline=tuple(shas),
    )
