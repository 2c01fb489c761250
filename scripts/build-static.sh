#!/usr/bin/env bash
# Builds log-agent, log-transfer and logctl as static musl binaries, for old servers: no shared
# library needed, not even libc. Output: target/static/x86_64-unknown-linux-musl/release/.
#
# The rustup toolchain here has no musl target and cannot download one, so this uses Debian's
# Rust (pinned, with its std sources) and -Zbuild-std; see ../shared/notes/static-musl.md for
# how each step was found. Idempotent: installs and prepares only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# Debian's rustc-web, cargo-web and rust-web-src, always at one version (measured: 1.96.0).
RUST_DEB=${RUST_DEB:-$(apt-cache policy rustc-web 2>/dev/null | awk '/Candidate:/ { print $2 }')}
UNWIND_DEB=libunwind-16-dev
TARGET=x86_64-unknown-linux-musl
LC_CACHE=${LC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/logcollect}
KIT=$LC_CACHE/musl-kit

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if [ -z "$RUST_DEB" ] || [ "$(dpkg-query -W -f '${Version}' rustc-web 2>/dev/null)" != "$RUST_DEB" ] || ! command -v musl-gcc >/dev/null; then
    as_root apt-get update -qq
    RUST_DEB=$(apt-cache policy rustc-web | awk '/Candidate:/ { print $2 }')
    echo "build-static: installing Debian's Rust $RUST_DEB with std sources, and musl-tools"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        "rustc-web=$RUST_DEB" "cargo-web=$RUST_DEB" "rust-web-src=$RUST_DEB" musl-tools file make g++ cmake >/dev/null
fi

# One directory with everything the static link needs: musl's crt objects and libc, gcc's
# crtbegin/crtend, and LLVM's libunwind with a __fprintf_chk that Debian's build expects.
if [ ! -f "$KIT/link/libunwind.a" ]; then
    echo "build-static: preparing $KIT"
    rm -rf "$KIT"
    mkdir -p "$KIT/link" "$KIT/include/curl" "$KIT/deb"
    cp /usr/lib/x86_64-linux-musl/*.o /usr/lib/x86_64-linux-musl/*.a "$KIT/link/"
    gccdir=$(dirname "$(gcc -print-file-name=crtbeginS.o)")
    cp "$gccdir"/crtbegin.o "$gccdir"/crtbeginS.o "$gccdir"/crtend.o "$gccdir"/crtendS.o "$KIT/link/"
    (cd "$KIT/deb" && apt-get download -qq "$UNWIND_DEB" 2>/dev/null && dpkg-deb -x ./*.deb x)
    cp "$(find "$KIT/deb/x" -name libunwind.a | head -n 1)" "$KIT/link/libunwind.a"
    cat >"$KIT/fprintf_chk.c" <<'C'
#include <stdarg.h>
#include <stdio.h>
int __fprintf_chk(FILE *f, int flag, const char *fmt, ...) {
    (void)flag;
    va_list ap;
    va_start(ap, fmt);
    int n = vfprintf(f, fmt, ap);
    va_end(ap);
    return n;
}
C
    musl-gcc -O2 -c "$KIT/fprintf_chk.c" -o "$KIT/fprintf_chk.o"
    ar rs "$KIT/link/libunwind.a" "$KIT/fprintf_chk.o" 2>/dev/null
    # librdkafka's build looks for curl.h even with curl off (librdkafka#5135).
    : >"$KIT/include/curl/curl.h"
fi
# gcc's support library: C code built for the target (mimalloc) may call its helpers, such
# as __popcountdi2 on CPUs without assuming POPCNT.
[ -f "$KIT/link/libgcc.a" ] || cp "$(gcc -print-libgcc-file-name)" "$KIT/link/libgcc.a"

echo "build-static: building (Debian rustc, -Zbuild-std; several minutes the first time)"
RUSTC=/usr/bin/rustc RUSTC_BOOTSTRAP=1 \
    CC_x86_64_unknown_linux_musl=musl-gcc AR_x86_64_unknown_linux_musl=ar CXX_x86_64_unknown_linux_musl=g++ \
    CFLAGS_x86_64_unknown_linux_musl="-isystem $KIT/include" \
    CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS="-L native=$KIT/link -C target-feature=+crt-static -C link-arg=-lgcc" \
    /usr/bin/cargo build --release --quiet --target "$TARGET" --target-dir target/static \
    -Zbuild-std=std,panic_abort -p log-agent -p log-transfer -p logctl \
    -p logcollect-shared --features logcollect-shared/vendored-openssl

out=target/static/$TARGET/release
for b in log-agent log-transfer logctl; do
    env -i "$out/$b" --version >/dev/null
    printf '%s: %s, %s\n' "$out/$b" "$(du -h "$out/$b" | cut -f1)" "$(file -b "$out/$b" | cut -d, -f1-2)"
done
