#!/bin/sh
# A private CA and a TLS server certificate for the Diaolou Mosquitto broker.
#
#   sh make-certs.sh DIR NAME [NAME...]
#
# DIR    where to write (created if missing).
# NAME   every host name or IP address the agents dial (the host part of their mqtts:// URL);
#        the first one is also the certificate's common name.
#
# Writes DIR/ca.crt (give it to every agent as mqtt.ca_file), DIR/ca.key (needed only to issue
# the next server certificate: keep it off the broker, e.g. on the officer's USB stick),
# DIR/server.crt and DIR/server.key (for the broker).
# Run it again with the same DIR to renew the server certificate: the CA is kept, so agents need
# no change. Mosquitto re-reads certfile/keyfile on SIGHUP (systemctl reload mosquitto).
#
# Keys are ECDSA P-256: a TLS handshake costs the broker far less CPU than with RSA, which matters
# when a thousand village boxes reconnect at once after an outage.
set -eu

if [ $# -lt 2 ]; then
    echo "usage: sh make-certs.sh DIR NAME [NAME...]   (NAME: the broker's host name or IP, as agents dial it)" >&2
    exit 2
fi
dir=$1
shift
mkdir -p "$dir"
cd "$dir"
umask 077

# Subject alternative names: clients check these, not the common name.
san=""
for name in "$@"; do
    case "$name" in
        *:*) san="$san,IP:$name" ;;         # IPv6 literal
        *[!0-9.]*) san="$san,DNS:$name" ;;  # host name
        *) san="$san,IP:$name" ;;           # IPv4 address
    esac
done
san=${san#,}

# Extensions written out in full: OpenSSL's defaults differ between versions, and strict
# verifiers (Python 3.13's default, for one) want key usages and key identifiers present.
cat > openssl.cnf <<EOF
[req]
distinguished_name = dn
[dn]
[ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
EOF

if [ -f ca.crt ] && [ ! -f ca.key ]; then
    # A new CA here would overwrite ca.crt, and no agent would trust the broker any more.
    echo "$dir/ca.crt exists but ca.key does not: put the CA key back (from where you keep it) and run again" >&2
    exit 1
fi
if [ ! -f ca.key ]; then
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -sha256 -days 3650 \
        -subj "/O=Diaolou/CN=Diaolou MQTT CA" -config openssl.cnf -extensions ca -keyout ca.key -out ca.crt
    echo "new CA: $dir/ca.crt (valid 10 years)"
fi

openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/O=Diaolou/CN=$1" \
    -config openssl.cnf -keyout server.key -out server.csr
# 825 days: renew every two years by running this again; the CA outlives many server certificates.
openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 825 -sha256 \
    -extfile openssl.cnf -extensions server -out server.crt
rm -f server.csr openssl.cnf
chmod 644 ca.crt server.crt
openssl verify -CAfile ca.crt server.crt
echo "server certificate for $san: $dir/server.crt, key $dir/server.key (valid 825 days)"
