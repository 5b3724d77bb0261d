# The course's part of the hub's config on Zero to JupyterHub, loaded by the chart's hub from
# /usr/local/etc/jupyterhub/jupyterhub_config.d/ (hub.extraFiles in hub/k8s/values.yaml; helm's --set-file puts this
# file and hub/uids.py there: docs/ZERO_TO_JUPYTERHUB.md).  Plain JupyterHub/KubeSpawner config, to read and adapt:
#   - every user's pod runs as a uid of their own (hub/uids.py: from the LMS id, the same at every start; the hub
#     refuses to start a user whose uid another user has), with that uid as its group and fsGroup; instructors also
#     get the exchange's group; the closed exchange (hub/exchange.py) then keeps students apart as on one machine;
#   - instructors get the instructor image; students the chart's singleuser.image, the student image (both built by
#     hub/k8s/Dockerfile; the student image holds no answers);
#   - instructors also get the instructors' volume (hub/k8s/pvc-course.yaml): the shared nbgrader course folder at
#     hub/settings.py's course folder, and the hub's LTI launches (read-only) for `./course instructor grades --lti`.
from hub import uids  # noqa: E402  (hub/uids.py, mounted beside the chart's jupyterhub_config.py)

c = get_config()  # noqa: F821

c.KubeSpawner.uid = uids.spawner_uid
c.KubeSpawner.gid = uids.spawner_uid
c.KubeSpawner.fs_gid = uids.spawner_uid
c.KubeSpawner.supplemental_gids = uids.spawner_supplemental_gids
c.KubeSpawner.environment.update({"USER": uids.spawner_username})

INSTRUCTOR_IMAGE = "ddpm-course-instructor:0.1.0"     # hub/k8s/Dockerfile --target instructor


COURSE_CLAIM = "ddpm-course"                          # hub/k8s/pvc-course.yaml
COURSE_VOLUME = {"name": "ddpm-course", "persistentVolumeClaim": {"claimName": COURSE_CLAIM}}
COURSE_MOUNTS = [
    {"name": "ddpm-course", "mountPath": "/srv/ddpm-hub/course", "subPath": "course"},     # hub/settings.py course_root
    {"name": "ddpm-course", "mountPath": "/srv/ddpm-hub/lti", "subPath": "lti", "readOnly": True},   # lti_dir
]


def image_by_role(spawner):
    """Instructors (the hub's instructors group): the instructor image and the instructors' volume; students: neither."""
    if uids.spawner_supplemental_gids(spawner):          # in the hub's instructors group
        spawner.image = INSTRUCTOR_IMAGE
        # new lists: the configured ones are shared by every spawner
        spawner.volumes = list(spawner.volumes) + [COURSE_VOLUME]
        spawner.volume_mounts = list(spawner.volume_mounts) + COURSE_MOUNTS


c.KubeSpawner.pre_spawn_hook = image_by_role
