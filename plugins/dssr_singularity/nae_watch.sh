# --- rank 0 of an interactive upstream template (dssr_singularity/nae_watch.sh) ---
# The template pulls the app's image and starts its container itself.  This watcher runs in the
# background beside it and finds that container among the node script and its descendants: a process of
# this user in another mount namespace whose root is no longer the node's (the container has started).
# An image's /etc/NAE is part of the image, so it is there at that moment or never: the watcher copies
# its url.txt and help.html, read through /proc/<pid>/root, into the service folder and then writes the
# marker (the downstream reads the folder when it sees the marker); a container without /etc/NAE gets
# the marker at once, without files (its link is the job's root).  No waiting either way.  A later
# container that has an /etc/NAE (the app's, after an init container) still brings its files: the
# watcher keeps looking until one does or the node script ends, and the downstream reads the files
# again until the app answers.  A container's own descendants run in it and are not walked.
# Descendants are read from /proc/<pid>/task/<tid>/children (Linux CONFIG_PROC_CHILDREN); a kernel
# without it gets the marker at once.  Only bash builtins run in a scan (and one sleep between scans).

dssr_containers() {  # PID: sets dssr_containers to the started containers among PID and its descendants
    local dssr_queue=("$1") dssr_p dssr_t dssr_kids
    dssr_containers=()
    while [ "${#dssr_queue[@]}" -gt 0 ]; do
        dssr_p=${dssr_queue[0]}
        dssr_queue=("${dssr_queue[@]:1}")
        if [ -O "/proc/$dssr_p" ] && ! [ "/proc/$dssr_p/ns/mnt" -ef /proc/self/ns/mnt ] &&
            [ -d "/proc/$dssr_p/root/" ] && ! [ "/proc/$dssr_p/root/" -ef / ]; then
            dssr_containers+=("$dssr_p")  # what runs below it runs in it
            continue
        fi
        for dssr_t in /proc/"$dssr_p"/task/*/children; do
            dssr_kids=()
            read -r -a dssr_kids <"$dssr_t" 2>/dev/null || true  # no newline at its end; a process gone
            dssr_queue+=("${dssr_kids[@]}")
        done
    done
}

dssr_nae_copy() {  # NAE-DIR SERVICE-DIR: url.txt and help.html, plain files only (a symbolic link would
    local dssr_f   # resolve against the node's root, not the image's)
    for dssr_f in url.txt help.html; do
        if [ -f "$1/$dssr_f" ] && ! [ -L "$1/$dssr_f" ] && head -c 65536 "$1/$dssr_f" >"$2/$dssr_f.part"; then
            mv -f "$2/$dssr_f.part" "$2/$dssr_f"
        else
            rm -f "$2/$dssr_f.part"
        fi
    done
}

dssr_nae_watch() {  # SCRIPT-PID SERVICE-DIR NODE-NAME
    local dssr_marked="" dssr_seen=" " dssr_p dssr_nae
    if ! [ -e "/proc/$1/task/$1/children" ]; then
        printf '%s\n' "$3" >"$2/interactive"
        return 0
    fi
    while kill -0 "$1" 2>/dev/null; do
        dssr_containers "$1"
        for dssr_p in "${dssr_containers[@]}"; do
            case $dssr_seen in *" $dssr_p "*) continue ;; esac
            dssr_seen+="$dssr_p "
            dssr_nae="/proc/$dssr_p/root/etc/NAE"
            if [ -e "$dssr_nae/url.txt" ] || [ -e "$dssr_nae/help.html" ] || [ -e "$dssr_nae/AppDef.json" ]; then
                dssr_nae_copy "$dssr_nae" "$2"
                printf '%s\n' "$3" >"$2/interactive"
                return 0
            fi
            if [ -z "$dssr_marked" ]; then
                printf '%s\n' "$3" >"$2/interactive"
                dssr_marked=1
            fi
        done
        sleep 0.5 2>/dev/null || sleep 1
    done
}
