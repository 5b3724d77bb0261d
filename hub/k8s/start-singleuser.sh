#!/bin/sh
# The single-user pods' entry point (hub/k8s/Dockerfile).  The hub gives each student a uid of their own
# (hub/uids.py), which has no line in the image's /etc/passwd; nbgrader's exchange names a submission after the
# process's user (pwd.getpwuid), so the pod gets one through nss_wrapper: a copy of /etc/passwd with its own line,
# for this process and every kernel it starts.  Then the environment the image was built with
# (hub/student_env.py writes it), and the command.
set -eu
if ! getent passwd "$(id -u)" >/dev/null 2>&1; then
  : "${USER:?the hub sets USER to the hub username (hub/k8s/jupyterhub_config_course.py)}"
  NSS_WRAPPER_PASSWD="$(mktemp)"
  cat /etc/passwd >"$NSS_WRAPPER_PASSWD"
  echo "$USER:x:$(id -u):$(id -g):$USER:${HOME:-/home/jovyan}:/bin/bash" >>"$NSS_WRAPPER_PASSWD"
  export NSS_WRAPPER_PASSWD NSS_WRAPPER_GROUP=/etc/group
  export LD_PRELOAD="${LD_PRELOAD:+$LD_PRELOAD:}libnss_wrapper.so"
fi
if [ -n "${DDPM_ENVIRONMENT:-}" ]; then
  . "$DDPM_ENVIRONMENT"
fi
exec "$@"
