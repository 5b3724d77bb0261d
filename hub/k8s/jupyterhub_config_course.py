# The course's part of the hub's config on Zero to JupyterHub, loaded by the chart's hub from
# /usr/local/etc/jupyterhub/jupyterhub_config.d/ (hub.extraFiles in hub/k8s/values.yaml; helm's --set-file puts this
# file and hub/uids.py there: docs/ZERO_TO_JUPYTERHUB.md).  Plain JupyterHub/KubeSpawner config, to read and adapt:
#   - every user's pod runs as a uid of their own (hub/uids.py: from the LMS id, the same at every start; the hub
#     refuses to start a user whose uid another user has), with that uid as its group and fsGroup; instructors also
#     get the exchange's group; the closed exchange (hub/exchange.py) then keeps students apart as on one machine;
#   - instructors get the instructor image; students the chart's singleuser.image, the student image (both built by
#     hub/k8s/Dockerfile; the student image holds no answers).
from hub import uids  # noqa: E402  (hub/uids.py, mounted beside the chart's jupyterhub_config.py)

c = get_config()  # noqa: F821

c.KubeSpawner.uid = uids.spawner_uid
c.KubeSpawner.gid = uids.spawner_uid
c.KubeSpawner.fs_gid = uids.spawner_uid
c.KubeSpawner.supplemental_gids = uids.spawner_supplemental_gids
c.KubeSpawner.environment.update({"USER": uids.spawner_username})

INSTRUCTOR_IMAGE = "ddpm-course-instructor:0.1.0"     # hub/k8s/Dockerfile --target instructor


def image_by_role(spawner):
    if uids.spawner_supplemental_gids(spawner):          # in the hub's instructors group
        spawner.image = INSTRUCTOR_IMAGE


c.KubeSpawner.pre_spawn_hook = image_by_role
