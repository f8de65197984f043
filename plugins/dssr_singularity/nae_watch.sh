# --- rank 0 of an interactive upstream template (dssr_singularity/nae_watch.sh) ---
# The template pulls the app's image and starts its container itself.  This watcher runs in the
# background beside it: it finds that container among the node script and its descendants (a process of
# this user in another mount namespace), copies the image's /etc/NAE/url.txt and help.html, read
# through /proc/<pid>/root, into the service folder, and only then writes the marker (the downstream
# reads the folder once, when it first sees the marker).  A job whose containers show no /etc/NAE for
# DSSR_NAE_WAIT seconds is marked without them: its link is then the job's root.  Descendants are
# read from /proc/<pid>/task/<tid>/children (Linux CONFIG_PROC_CHILDREN); a kernel without it gets
# the marker at once.  Only bash builtins run in a scan.

dssr_below() {  # PID: sets dssr_below to PID and the pids of its descendants
    local dssr_queue=("$1") dssr_t dssr_kids
    dssr_below=("$1")  # itself too: a template may exec its container
    while [ "${#dssr_queue[@]}" -gt 0 ]; do
        for dssr_t in /proc/"${dssr_queue[0]}"/task/*/children; do
            dssr_kids=()
            read -r -a dssr_kids <"$dssr_t" 2>/dev/null || true  # no newline at its end; a process gone
            dssr_below+=("${dssr_kids[@]}")
            dssr_queue+=("${dssr_kids[@]}")
        done
        dssr_queue=("${dssr_queue[@]:1}")
    done
}

dssr_nae_watch() {  # SCRIPT-PID SERVICE-DIR NODE-NAME
    local dssr_waited=0 dssr_found dssr_p dssr_nae dssr_f
    while [ -e "/proc/$1/task/$1/children" ]; do
        dssr_found=""
        dssr_below "$1"
        for dssr_p in "${dssr_below[@]}"; do
            [ -O "/proc/$dssr_p" ] && ! [ "/proc/$dssr_p/ns/mnt" -ef /proc/self/ns/mnt ] || continue
            dssr_found=$dssr_p
            dssr_nae="/proc/$dssr_p/root/etc/NAE"
            if [ -e "$dssr_nae/url.txt" ] || [ -e "$dssr_nae/help.html" ] || [ -e "$dssr_nae/AppDef.json" ]; then
                for dssr_f in url.txt help.html; do
                    # a plain file only: a symbolic link would resolve against the node's root, not the image's
                    if [ -f "$dssr_nae/$dssr_f" ] && ! [ -L "$dssr_nae/$dssr_f" ] &&
                        head -c 65536 "$dssr_nae/$dssr_f" >"$2/$dssr_f.part"; then
                        mv -f "$2/$dssr_f.part" "$2/$dssr_f"
                    else
                        rm -f "$2/$dssr_f.part"
                    fi
                done
                break 2
            fi
        done
        if [ -n "$dssr_found" ]; then
            dssr_waited=$((dssr_waited + 1))
            [ "$dssr_waited" -lt "${DSSR_NAE_WAIT:-30}" ] || break
        fi
        sleep 1
        kill -0 "$1" 2>/dev/null || return 0
    done
    printf '%s\n' "$3" >"$2/interactive"
}
