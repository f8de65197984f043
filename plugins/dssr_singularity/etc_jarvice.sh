# --- the job's /etc/JARVICE folder and secrets (dssr_singularity/etc_jarvice.sh) ---
# For interactive jobs, in the native node script and in an upstream template's parameter block.
# The job's secrets file has set the secret variables (DSSR_NIMBIXPASSWD, DSSR_RANDOM<N>, DSSR_VNCPASSWD).

# dssr_etc_jarvice DIR: this node's /etc/JARVICE: random<N>.txt (no newline), vncpasswd (jarvice-desktop's
# -rfbauth file) and nodes, mode 0600 in a folder of mode 0770 (the service user, the job folder's group,
# can remove it at garbage collection even after a KILL skipped the node's own cleanup).
dssr_etc_jarvice() {
    rm -rf -- "$1"
    (
        umask 077 && mkdir -m 0770 "$1" &&
            for dssr_n in 16 32 64 128; do
                dssr_var="DSSR_RANDOM$dssr_n"
                printf '%s' "${!dssr_var:-}" >"$1/random$dssr_n.txt" || exit 1
            done &&
            printf '%s' "${DSSR_VNCPASSWD:-}" | base64 -d >"$1/vncpasswd" &&
            tr -s ' ' '\n' <<<"${JOB_JOB_FORMATED_NODELIST:-}" | sed '/^$/d' >"$1/nodes"
    )
}

# dssr_fill_secrets NAME: %NIMBIXPASSWD% and %RANDOM<N>% in the variable NAME become the job's values;
# then the secret variables are unset: the app gets its secrets as files and in its command, never in
# its environment.
dssr_fill_secrets() {
    local dssr_value=${!1} dssr_name dssr_var dssr_pattern
    for dssr_name in NIMBIXPASSWD RANDOM16 RANDOM32 RANDOM64 RANDOM128; do
        dssr_var="DSSR_$dssr_name"
        dssr_pattern="%$dssr_name%"
        dssr_value=${dssr_value//"$dssr_pattern"/"${!dssr_var:-}"}
        unset "$dssr_var"
    done
    unset DSSR_VNCPASSWD
    printf -v "$1" '%s' "$dssr_value"
}
