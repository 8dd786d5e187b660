#!/usr/bin/env bash
# `make install` and `make uninstall` (see the Makefile for the variables).
#
#   install.sh install STAGE     copies the staged files into $DESTDIR$PREFIX and the default
#                                configuration into $DESTDIR$SYSCONFDIR/enforcer where none is
#   install.sh uninstall         takes back exactly what install added
#
# install writes a manifest of every file and every directory it created, in order;
# uninstall walks it backwards: files go, directories go only if empty, and the
# configuration goes only if nobody changed it. Whatever was there before install stays.
set -euo pipefail
: "${PREFIX:?}" "${SYSCONFDIR:?}" "${UNITDIR:?}"
DESTDIR=${DESTDIR:-}
manifest="$PREFIX/share/enforcer/installed-files"
default_conf=$(dirname "$0")/../examples/service/enforcer.conf

# Creates directory $1 (a path without DESTDIR) and its missing parents, listing each one made.
make_directory() {
    local path=$1 missing=()
    while [ ! -d "$DESTDIR$path" ]; do missing=("$path" "${missing[@]}"); path=$(dirname "$path"); done
    for path in "${missing[@]}"; do
        mkdir -m 0755 "$DESTDIR$path"
        echo "$path/" >> "$list"
    done
}

# Installs file $1 as $2 (a path without DESTDIR) with mode $3, and lists it.
put() {
    make_directory "$(dirname "$2")"
    install -m "$3" "$1" "$DESTDIR$2"
    echo "$2" >> "$list"
}

case $1 in
install)
    stage=$2
    list=$(mktemp)
    trap 'rm -f "$list"' EXIT
    # A manifest from an earlier install is kept: what that one created is still ours.
    [ -f "$DESTDIR$manifest" ] && cat "$DESTDIR$manifest" > "$list"
    put "$stage/enforcer" "$PREFIX/bin/enforcer" 0755
    put "$stage/enforcer.8" "$PREFIX/share/man/man8/enforcer.8" 0644
    put "$stage/enforcer.bash" "$PREFIX/share/bash-completion/completions/enforcer" 0644
    put "$stage/_enforcer" "$PREFIX/share/zsh/site-functions/_enforcer" 0644
    put "$stage/enforcer.fish" "$PREFIX/share/fish/vendor_completions.d/enforcer.fish" 0644
    put "$stage/enforcer.service" "$UNITDIR/enforcer.service" 0644
    # The configuration only where there is none: an operator's own is never replaced.
    if [ -e "$DESTDIR$SYSCONFDIR/enforcer/enforcer.conf" ]; then
        echo "kept $SYSCONFDIR/enforcer/enforcer.conf"
    else
        put "$default_conf" "$SYSCONFDIR/enforcer/enforcer.conf" 0644
        echo "installed $SYSCONFDIR/enforcer/enforcer.conf"
    fi
    make_directory "$SYSCONFDIR/enforcer/rules.d"
    make_directory "$(dirname "$manifest")"
    # Each path once, in the order first listed.
    awk '!seen[$0]++' "$list" > "$DESTDIR$manifest"
    ;;
uninstall)
    [ -f "$DESTDIR$manifest" ] || { echo "nothing to uninstall: no $DESTDIR$manifest" >&2; exit 1; }
    entries=$(tac "$DESTDIR$manifest")
    rm -f "$DESTDIR$manifest"
    while read -r path; do
        target=$DESTDIR$path
        case $path in
        */enforcer.conf)
            if cmp -s "$target" "$default_conf"; then rm -f "$target"; else echo "kept $path (changed since install)"; fi ;;
        */) rmdir "$target" 2>/dev/null || { [ -d "$target" ] && echo "kept $path (not empty)"; } || true ;;
        *) rm -f "$target" ;;
        esac
    done <<< "$entries"
    ;;
*)
    echo "usage: install.sh install STAGE | uninstall" >&2
    exit 2
    ;;
esac
