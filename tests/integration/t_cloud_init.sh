#!/bin/bash
# t_cloud_init.sh: cloud-init data for containers the way LXD's images take it: their
# templates render the NoCloud seed (/var/lib/cloud/seed/nocloud-net/) from
# config_get("cloud-init.user-data", properties.default) and friends when the instance
# is created or copied. The busybox image is repacked here with templates written like
# those of LXD's images (meta-data, user-data, vendor-data and network-config, the
# latter with nested ifs), then launched through `berth` and the stock `lxc` with the
# keys set on the instance, in a profile, or not at all; the rendered files are read
# inside the container: content, owner (the container's root) and mode. A copy renders
# them again for its own name. TAP output.
. "$(dirname "$0")/lib.sh"
berth_test_images busybox
: "${BERTH_MONITOR:=$BERTH_BUILDDIR/berth-monitor}"
[ -x "$BERTH_MONITOR" ] || skip_all "no berth-monitor at $BERTH_MONITOR (build it first)"
command -v lxc >/dev/null || skip_all "lxc not installed (apt-get install lxd-client)"
BERTHD_ENV=(BERTH_MONITOR="$BERTH_MONITOR")
berth_test_init "$@"
export PATH=$BERTH_BUILDDIR:$PATH
export LXD_CONF=$TEST_TMP/lxd-conf
mkdir -p "$LXD_CONF"
unset LXD_DIR
SEED=/var/lib/cloud/seed/nocloud-net

# ---- the image: busybox with cloud-init templates as LXD's images carry them ----
img=$TEST_TMP/ci
mkdir -p "$img"
tar -xzf "${IMAGE[busybox]}" -C "$img"
cat >>"$img/metadata.yaml" <<'EOF'
  /var/lib/cloud/seed/nocloud-net/meta-data:
    when:
    - create
    - copy
    create_only: false
    template: cloud-init-meta.tpl
    properties: {}
  /var/lib/cloud/seed/nocloud-net/user-data:
    when:
    - create
    - copy
    create_only: false
    template: cloud-init-user.tpl
    properties:
      default: |
        #cloud-config
        {}
  /var/lib/cloud/seed/nocloud-net/vendor-data:
    when:
    - create
    - copy
    create_only: false
    template: cloud-init-vendor.tpl
    properties:
      default: |
        #cloud-config
        {}
  /var/lib/cloud/seed/nocloud-net/network-config:
    when:
    - create
    - copy
    create_only: false
    template: cloud-init-network.tpl
    properties: {}
EOF
printf '%s\n' 'instance-id: {{ container.name }}' 'local-hostname: {{ container.name }}' \
	'{{ config_get("user.meta-data", "") }}' >"$img/templates/cloud-init-meta.tpl"
printf '%s' '{{ config_get("cloud-init.user-data", properties.default) }}' \
	>"$img/templates/cloud-init-user.tpl"
printf '%s' '{{ config_get("cloud-init.vendor-data", properties.default) }}' \
	>"$img/templates/cloud-init-vendor.tpl"
cat >"$img/templates/cloud-init-network.tpl" <<'EOF'
{%- if config_get("cloud-init.network-config", "") == "" %}
version: 1
config:
  - type: physical
    name: eth0
    subnets:
      - type: {% if config_get("user.network_mode", "") == "link-local" %}manual{% else %}dhcp{% endif %}
        control: auto
{%- else -%}
{{ config_get("cloud-init.network-config", "") }}
{%- endif %}
EOF
(cd "$img" && tar -czf "$TEST_TMP/ci.tar.gz" metadata.yaml templates rootfs)
check "import the busybox image with cloud-init templates" \
	berth image import "$TEST_TMP/ci.tar.gz" --alias ci
check "lxc remote add b" lxc remote add b "unix://$BERTH_SOCKET"

seed() { run berth exec "$1" -- cat "$SEED/$2"; }

# ---- no key: the templates' defaults ----
check "berth launch c0 (no cloud-init key)" berth launch ci c0
seed c0 user-data
is "$OUT" $'#cloud-config\n{}' "c0: user-data is the template's default"
seed c0 vendor-data
is "$OUT" $'#cloud-config\n{}' "c0: vendor-data is the template's default"
seed c0 meta-data
like "$OUT" '^instance-id: c0' "c0: meta-data names the instance"
like "$OUT" 'local-hostname: c0' "c0: ... and its host name"
seed c0 network-config
like "$OUT" 'type: dhcp' "c0: network-config: the default, DHCP on eth0"
unlike "$OUT" '\{%|\{\{' "c0: ... with no template syntax left"
run berth exec c0 -- stat -c '%u:%g %a' "$SEED/user-data" "$SEED"
is "$OUT" $'0:0 644\n0:0 755' "c0: the seed is the container root's, 0644 in a 0755 directory"

# ---- keys on the instance, through lxc ----
ud=$'#cloud-config\nruncmd:\n  - echo from-instance\n'
nc=$'version: 2\nethernets:\n  eth0:\n    dhcp4: false\n'
run lxc launch b:ci b:c1 -c "cloud-init.user-data=$ud" -c "cloud-init.network-config=$nc" \
	-c user.meta-data=zone:a -c user.network_mode=link-local
rc_ok "lxc launch c1 with cloud-init.user-data and network-config"
seed c1 user-data
is "$OUT" "${ud%$'\n'}" "c1: user-data is the instance's key (trailing newline trimmed, as LXD)"
seed c1 network-config
is "$OUT" "${nc%$'\n'}" "c1: network-config is the instance's key"
seed c1 meta-data
like "$OUT" 'zone:a' "c1: meta-data carries user.meta-data"
seed c1 vendor-data
is "$OUT" $'#cloud-config\n{}' "c1: vendor-data unset: the default"

# ---- keys from a profile; the instance's own key wins ----
check "profile ci" berth profile create ci
check "profile ci: cloud-init.vendor-data" \
	berth profile set ci cloud-init.vendor-data=$'#cloud-config\npackages: [htop]'
check "profile ci: user.network_mode" berth profile set ci user.network_mode=link-local
run lxc launch b:ci b:c2 -p default -p ci -c cloud-init.vendor-data=mine
rc_ok "lxc launch c2 with profile ci and its own vendor-data"
seed c2 vendor-data
is "$OUT" mine "c2: the instance's key wins over the profile's"
seed c2 network-config
like "$OUT" 'type: manual' "c2: user.network_mode from the profile reaches the nested if"
check "berth launch c3 with profile ci" berth launch ci c3 -p default -p ci
seed c3 vendor-data
is "$OUT" $'#cloud-config\npackages: [htop]' "c3: vendor-data from the profile"

# ---- a copy renders them for its own name ----
check "stop c1" berth stop c1 --force
run lxc copy b:c1 b:c1copy
rc_ok "lxc copy c1 c1copy"
check "start c1copy" berth start c1copy
seed c1copy meta-data
like "$OUT" '^instance-id: c1copy' "c1copy: meta-data renamed on copy"
seed c1copy user-data
is "$OUT" "${ud%$'\n'}" "c1copy: user-data kept"

check "delete everything" berth delete --force c0 c1 c1copy c2 c3
