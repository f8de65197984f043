#!/usr/bin/env bash
# Start jarvice-dssr for a Slurm cluster (SSH interface): a template to copy and edit.
#
# 1. Change every value on a line marked "# SITE:" to your site's (the comment says what it is);
#    the other values are sound defaults. Every variable is described in docs/settings.md.
# 2. Put the files this script reads in /etc/jarvice-dssr/ (each named below; secrets come from
#    files, never from this script): the service user's key, known_hosts, the user-id mapping
#    file, the registry credentials and the upstream token.
# 3. Check the settings against the cluster, then serve:
#      bash launch-slurm.sh doctor [--submit you@example.com]
#          runs `dssr doctor` (docs/operations.md) with exactly these settings instead of the
#          server: one OK/FAIL line per check, exit status 0 when every check passed
#      bash launch-slurm.sh [dssr-server flags, e.g. --port 5001]
#          runs dssr-server with these settings (exit status 2: a bad setting, named on stderr)
set -euo pipefail

# -- the cluster ---------------------------------------------------------------------------
export JARVICE_BAREMETAL_CONNECTOR=slurm
export JARVICE_SLURM_INTERFACE=cli
export JARVICE_SLURM_CLUSTER_ADDR=login1.cluster.example  # SITE: the login node's address
export JARVICE_SLURM_CLUSTER_PORT=22  # SITE: its SSH port
export JARVICE_SLURM_SSH_USER=jarvice  # SITE: the service user (coordinator of the users' accounts)
# the service user's private key (PEM/OpenSSH text or base64 of it), read from its file by the server
export JARVICE_SLURM_SSH_PKEY_FILE=/etc/jarvice-dssr/jarvice_ed25519
# pin the login node's host key: a known_hosts file, or its fingerprint
export JARVICE_SLURM_SSH_KNOWN_HOSTS=/etc/jarvice-dssr/known_hosts
# export JARVICE_SLURM_SSH_HOST_KEY=SHA256:...
export JARVICE_SLURM_COMMAND_TIMEOUT=30
export JARVICE_SLURM_STATUS_TTL=2
export JARVICE_SLURM_KILL_GRACE=10

# -- storage and users ---------------------------------------------------------------------
export JARVICE_BAREMETAL_SCRATCH_DIR=/jxe_scratch  # SITE: the shared folder jobs run in
export JARVICE_PVCLS_ROOTS=""
export JARVICE_USERS_ID_MAPPING_FILE=/etc/jarvice-dssr/users_id_mapping_configuration.yaml

# -- the upstream's identity provider (bearer tokens are verified) --------------------------
export JARVICE_JWT_VERIFY=true
export JARVICE_JWT_ISSUER=https://keycloak.example/realms/jarvice  # SITE: the realm's issuer
export JARVICE_JWT_JWKS_URL="$JARVICE_JWT_ISSUER/protocol/openid-connect/certs"  # SITE: its keys (Keycloak's path)
export JARVICE_JWT_AUDIENCE=jarvice  # SITE: the portal's client id
export JARVICE_JWT_LEEWAY=60

# -- what runs on the nodes ----------------------------------------------------------------
export JARVICE_BAREMETAL_EXECUTOR=singularity
export JARVICE_SYSTEM_REGISTRY=us-docker.pkg.dev  # SITE: the registry of JARVICE's system images
export JARVICE_SYSTEM_REPO_BASE=jarvice-system/images  # SITE: their repository
export JARVICE_IMAGES_TAG=jarvice-master  # SITE: the tag of your JARVICE release
# registry credentials, base64 (they reach jobs only through each job's 0600 secrets file)
JARVICE_DOCKER_USERNAME="$(base64 -w0 < /etc/jarvice-dssr/registry_user)"
JARVICE_DOCKER_PASSWORD="$(base64 -w0 < /etc/jarvice-dssr/registry_password)"
export JARVICE_DOCKER_USERNAME JARVICE_DOCKER_PASSWORD
export JARVICE_BAREMETAL_HTTP_PROXY=""
export JARVICE_BAREMETAL_HTTPS_PROXY=""
export JARVICE_BAREMETAL_NO_PROXY=""

# -- the server ----------------------------------------------------------------------------
# It listens on every address: only a caller holding this shared secret (the portal, which
# sends "Authorization: Bearer <it>") may use it. A long random string, e.g.
#   openssl rand -hex 32 > /etc/jarvice-dssr/upstream_token; chmod 600 /etc/jarvice-dssr/upstream_token
# The script stops here when the file is missing or empty: never serve the network without it.
JARVICE_DSSR_AUTH_TOKEN="$(cat /etc/jarvice-dssr/upstream_token)"
if [ -z "$JARVICE_DSSR_AUTH_TOKEN" ]; then
    echo "launch-slurm.sh: /etc/jarvice-dssr/upstream_token is empty: JARVICE_DSSR_AUTH_TOKEN must be set" >&2
    exit 2
fi
export JARVICE_DSSR_AUTH_TOKEN
export WAITRESS_BIND_ADDRESS=0.0.0.0
export WAITRESS_PORT=5000
export WAITRESS_THREADS=16
export JARVICE_SCHED_LOGLEVEL=20

if [ "${1:-}" = doctor ]; then
    shift
    exec dssr doctor "$@"
fi
exec dssr-server "$@"
