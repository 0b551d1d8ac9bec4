#!/bin/sh
# Installs the Debian bookworm packages the realcloud suite needs, when missing.
# Library packages only (python3-nova, not nova-api): no debconf prompts, no
# init scripts; policy-rc.d keeps mariadb/rabbitmq postinsts from starting them.
set -e
PKGS="python3-nova python3-keystone python3-placement python3-glance \
python3-neutron python3-openstackclient rabbitmq-server mariadb-server \
uwsgi-core uwsgi-plugin-python3 curl"
missing=
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
[ "$(id -u)" = 0 ] || { echo "install.sh: root needed to install:$missing" >&2; exit 1; }
added=
if [ ! -e /usr/sbin/policy-rc.d ]; then
	printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d
	chmod +x /usr/sbin/policy-rc.d
	added=1
fi
start=$(date +%s)
# Debian postinsts fail without a package index on a fresh machine.
ls /var/lib/apt/lists/*Packages* >/dev/null 2>&1 || apt-get -q update
DEBIAN_FRONTEND=noninteractive nice -n 10 apt-get -q -o DPkg::Lock::Timeout=900 \
	install -y --no-install-recommends $missing
[ -n "$added" ] && rm -f /usr/sbin/policy-rc.d
echo "install.sh: installed in $(( $(date +%s) - start )) s:$missing"
