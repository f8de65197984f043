# --- body of the native node script (dssr_singularity/native_node.sh) ---
# Runs once per node, in the job folder, after the generated header above set
# the DSSR_* variables.  Steps: choose the runtime binary, pull the image once
# into its cache under an exclusive lock, create this node's overlay (or use a
# writable tmpfs), run the command in the container, return its exit code.

dssr_log() {
    printf '[dssr node %s %s] %s\n' "${PROCESS_PROCID:-0}" "${PROCESS_NODENAME:-$(hostname)}" "$*" >&2
}

if [ -z "$DSSR_BINARY" ]; then
    if command -v apptainer >/dev/null 2>&1; then
        DSSR_BINARY=apptainer
    else
        DSSR_BINARY=singularity
    fi
fi
case "$(basename "$DSSR_BINARY")" in
    singularity*) DSSR_ENV_PREFIX=SINGULARITYENV_ ;;
    *) DSSR_ENV_PREFIX=APPTAINERENV_ ;;
esac

# The pull: one per image and cache, whatever the number of nodes and jobs.
# The lock is opened read-only so that any user of the shared cache can take it.
dssr_pull() {
    mkdir -p "$DSSR_IMAGE_DIR" "$DSSR_LOCK_DIR" "$DSSR_CACHEDIR" || return 1
    (umask 000 && : >>"$DSSR_LOCK") 2>/dev/null
    (
        flock -x 9 || exit 1
        if [ -s "$DSSR_IMAGE_FILE" ]; then
            exit 0
        fi
        partial="${DSSR_IMAGE_FILE%.sif}.partial-${PROCESS_NODENAME:-node}-$$.sif"
        rm -f "$partial"
        if [ "$DSSR_NEEDS_CREDENTIALS" = 1 ]; then
            if [ -r "$DSSR_SECRETS_FILE" ]; then
                # shellcheck disable=SC1090
                . "$DSSR_SECRETS_FILE"
            fi
            export APPTAINER_DOCKER_USERNAME="${DSSR_PULL_USERNAME:-}" APPTAINER_DOCKER_PASSWORD="${DSSR_PULL_PASSWORD:-}"
            export SINGULARITY_DOCKER_USERNAME="${DSSR_PULL_USERNAME:-}" SINGULARITY_DOCKER_PASSWORD="${DSSR_PULL_PASSWORD:-}"
        fi
        export APPTAINER_CACHEDIR="$DSSR_CACHEDIR" SINGULARITY_CACHEDIR="$DSSR_CACHEDIR"
        if [ "$DSSR_PULL_INSECURE" = 1 ]; then
            # the site listed this registry in JARVICE_SINGULARITY_INSECURE_REGISTRIES: plain HTTP (--no-https)
            export APPTAINER_NOHTTPS=1 SINGULARITY_NOHTTPS=1
        fi
        dssr_log "pulling $DSSR_IMAGE_SOURCE into $DSSR_IMAGE_FILE"
        # shared images must be readable by every user, private ones by their owner only
        umask "$DSSR_IMAGE_UMASK"
        "$DSSR_BINARY" "$DSSR_VERBOSITY" pull "$partial" "$DSSR_IMAGE_SOURCE" &&
            chmod "$DSSR_IMAGE_MODE" "$partial" && mv -f "$partial" "$DSSR_IMAGE_FILE"
        rc=$?
        if [ "$rc" -ne 0 ]; then
            rm -f "$partial"
        fi
        exit "$rc"
    ) 9<"$DSSR_LOCK"
}

if ! dssr_pull; then
    dssr_log "the image $DSSR_IMAGE_SOURCE could not be pulled"
    exit 125
fi

# What this node leaves behind is removed when it ends (its overlay, its /etc/JARVICE folder).
dssr_cleanup=()
trap 'if [ "${#dssr_cleanup[@]}" -gt 0 ]; then rm -rf -- "${dssr_cleanup[@]}"; fi' EXIT

dssr_args=(-B "$DSSR_JOB_DIR" -B "$DSSR_USER_SCRATCH" --pwd "$DSSR_WORKDIR")
if [ "$DSSR_GPUS" -gt 0 ]; then
    dssr_args+=(--nv)
fi

# Interactive jobs: the job's secrets where apps expect them (/etc/JARVICE/random<N>.txt,
# and %NIMBIXPASSWD% / %RANDOM<N>% in the command), and, on rank 0, the service
# folder the downstream reads: the marker, the URL template and the help page.
dssr_service_file() {  # NAME PATH-IN-IMAGE: the command's value, else the image's file
    local dest="$DSSR_SERVICE_DIR/$1"
    if [ "$1" = url.txt ] && [ -n "$DSSR_SERVICE_URL" ]; then
        printf '%s\n' "$DSSR_SERVICE_URL" >"$dest"
    elif "$DSSR_BINARY" -s exec "$DSSR_IMAGE_FILE" cat "$2" >"$dest.part" 2>/dev/null && [ -s "$dest.part" ]; then
        mv -f "$dest.part" "$dest"
    else
        rm -f "$dest.part"
    fi
}
if [ "$DSSR_SERVICE" = 1 ]; then
    if [ -r "$DSSR_SECRETS_FILE" ]; then
        # shellcheck disable=SC1090
        . "$DSSR_SECRETS_FILE"
    fi
    dssr_etc="$DSSR_JOB_DIR/.dssr-etc-jarvice-${PROCESS_PROCID:-0}"
    dssr_cleanup+=("$dssr_etc")
    if ! dssr_etc_jarvice "$dssr_etc"; then
        dssr_log "the job's /etc/JARVICE folder $dssr_etc could not be written"
        exit 125
    fi
    dssr_fill_secrets DSSR_COMMAND
    unset DSSR_PULL_USERNAME DSSR_PULL_PASSWORD
    dssr_args+=(-B "$dssr_etc:/etc/JARVICE:ro")
    if [ "${PROCESS_PROCID:-0}" = 0 ]; then
        # readable by the service user (the group of the user's scratch folder), by no one else
        if (umask 027 && { [ -d "$DSSR_SERVICE_DIR" ] || mkdir -m 0770 "$DSSR_SERVICE_DIR"; } && dssr_service_file url.txt /etc/NAE/url.txt &&
            dssr_service_file help.html /etc/NAE/help.html &&
            printf '%s\n' "${PROCESS_NODENAME:-}" >"$DSSR_SERVICE_DIR/interactive"); then
            dssr_log "interactive: service folder written; the downstream links to the app once it listens"
        else
            dssr_log "the service folder $DSSR_SERVICE_DIR could not be written: the job cannot be reached"
        fi
    fi
fi

if [ "$DSSR_OVERLAY_MB" -gt 0 ]; then
    dssr_overlay="$DSSR_JOB_DIR/overlay-${PROCESS_PROCID:-0}.img"
    rm -f "$dssr_overlay"
    dssr_cleanup+=("$dssr_overlay")
    if ! "$DSSR_BINARY" "$DSSR_VERBOSITY" overlay create --size "$DSSR_OVERLAY_MB" "$dssr_overlay"; then
        dssr_log "the overlay image $dssr_overlay could not be created"
        exit 125
    fi
    dssr_args+=(--overlay "$dssr_overlay")
else
    dssr_args+=(--writable-tmpfs)
fi
for dssr_var in "${DSSR_ENVIRONMENT[@]}"; do
    export "${DSSR_ENV_PREFIX}${dssr_var?}"
done

"$DSSR_BINARY" "$DSSR_VERBOSITY" exec "${dssr_args[@]}" "$DSSR_IMAGE_FILE" /bin/sh -c "$DSSR_COMMAND"
dssr_rc=$?
dssr_log "command ended with exit code $dssr_rc"
exit "$dssr_rc"
