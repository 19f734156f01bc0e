//! The help text: every flag with its default. Shown by `--help` and after a usage error's
//! hint.

pub const USAGE: &str = "\
bully - leader election with the Bully algorithm

USAGE:
    bully PORT NAME [options]
    bully status [--instance NAME | registry options] [--json] [--watch] [--prune]
    bully step-down [--to NODE] [--instance NAME | --port PORT | --cluster NAME]
    bully maintenance on|off [--instance NAME | --port PORT]
    bully help [COMMAND]                          (bully help status, step-down, maintenance)

On a host with the package, the commands find the node and cluster of its instance
(bully@NAME, set in /etc/default/bully and /etc/default/bully-NAME); with several, name one
with --instance NAME. step-down --cluster NAME asks whoever leads that cluster.

OPTIONS (each also read from BULLY_<FLAG>, e.g. BULLY_HEALTH_INTERVAL=500ms; a flag wins):
    --id N                 election priority, unsigned 64-bit; higher wins [default:
                           drawn once, kept in the state dir]
    --cluster NAME         cluster name; clusters never see each other [default: bully]
    --registry KIND        dir | consul | etcd | static [default: dir; --consul, --etcd or
                           --peers alone select consul, etcd or static]
    --registry-dir PATH    where the dir registry lives, one sub-directory per cluster
                           [default: $XDG_RUNTIME_DIR/bully, else /tmp/bully-<uid>]
    --peers LIST           static registry: comma-separated HOST:PORT of the other nodes
    --peers-file PATH      static registry: one HOST:PORT a line (# comments), read again
                           on SIGHUP
    --consul URL           consul registry: agent address, http[s]://HOST:PORT or HOST:PORT
                           [default: $CONSUL_HTTP_ADDR, else http://127.0.0.1:8500; https
                           when $CONSUL_HTTP_SSL is true]
    --consul-token TOKEN   consul ACL token, sent as X-Consul-Token [default: $CONSUL_HTTP_TOKEN;
                           the token in the file $CONSUL_HTTP_TOKEN_FILE wins over both]
    --consul-check-interval DUR
                           how often Consul checks GET / on this node, 1s or more [default: 10s]
    --consul-deregister-after DUR
                           Consul drops a node whose check stays critical this long, 1m or
                           more [default: 1m]
    --consul-lock          consul registry: leading also takes holding Consul's session lock
                           on bully/<cluster>/leader; hooks get BULLY_CONSUL_LOCK_INDEX
    --consul-lock-delay DUR
                           the lock-delay of this node's Consul sessions, at most 60s
                           [default: 0s]
    --consul-cacert FILE   consul over https: the CA bundle the agent's certificate must chain
                           to, the only one trusted [default: $CONSUL_CACERT]
    --consul-client-cert FILE
                           consul over https: this node's client certificate, for an agent
                           with verify_incoming [default: $CONSUL_CLIENT_CERT]
    --consul-client-key FILE
                           its private key [default: $CONSUL_CLIENT_KEY]
    --consul-tls-server-name NAME
                           the name the agent's certificate must carry, instead of the URL's
                           host [default: $CONSUL_TLS_SERVER_NAME]
    --etcd URL[,URL...]    etcd registry: endpoints, http[s]://HOST:PORT or HOST:PORT
                           [default: $ETCDCTL_ENDPOINTS, else http://127.0.0.1:2379]
    --etcd-ttl DUR         etcd: TTL of this node's leases (member key, leader key), whole
                           seconds from 2s [default: 5s]
    --etcd-lock            etcd registry: leading also takes holding bully/<cluster>/leader on
                           a lease that fences the --exec child; hooks get BULLY_ETCD_REVISION
    --etcd-user NAME       etcd token auth as NAME, with --etcd-password-file PATH
    --etcd-cacert FILE     etcd over https: the CA bundle etcd's certificate must chain to,
                           the only one trusted [default: $ETCDCTL_CACERT]
    --etcd-cert FILE       etcd over https: this node's client certificate, for an etcd that
                           verifies clients [default: $ETCDCTL_CERT]
    --etcd-key FILE        its private key [default: $ETCDCTL_KEY]
    --bind ADDR            listen address [default: 127.0.0.1]
    --advertise HOST       address others use to reach this node [default: the bind address;
                           127.0.0.1 when binding 0.0.0.0]
    --startup-delay DUR    first election after this long [default: 15s]
    --health-interval DUR  how often a follower checks the coordinator when its beats do
                           not notice a failure sooner [default: 20s]
    --timeout DUR          per-request timeout to peers [default: 1s]
    --heartbeat DUR        the coordinator beats on each follower's watch this often; three
                           missed beats and the follower elects [default: 250ms]
    --log-level LEVEL      error | warn | info | debug | trace | off, or a list like
                           info,bully::runtime=debug; unset, RUST_LOG is read [default: info]
    --cluster-key KEY      sign every POST with HMAC-SHA256 and refuse unsigned ones; set it
                           whenever a node listens beyond loopback (at least 16 bytes)
    --cluster-key-file PATH
                           the key from a file (trailing white space dropped)
    --tls-cert FILE        mutual TLS (with --tls-key and --tls-ca, all three or none): serve
                           HTTPS only and call peers over HTTPS, presenting this PEM chain;
                           its SANs must name the address the node advertises (IP or DNS)
    --tls-key FILE         the certificate's private key (PEM: PKCS#8, RSA or SEC1)
    --tls-ca FILE          the cluster's CA bundle (PEM): peers and clients must present a
                           certificate it signed; read again on SIGHUP with the other two
    --on-elected CMD       run CMD with sh -c each time this node becomes coordinator
    --on-demoted CMD       run CMD with sh -c each time it stops being coordinator, also
                           on SIGINT/SIGTERM before exiting
    --hook-timeout DUR     kill a hook and its children after this long [default: 30s]
    --exec CMD             keep CMD (sh -c) running only while this node is coordinator
    --exec-grace DUR       on demotion or exit the --exec child's process group gets SIGTERM,
                           then SIGKILL after this long (in quorum mode at most until the
                           lease ends) [default: 10s]
    --vip ADDR/PREFIX      hold this virtual IP (IPv4 or IPv6) only while coordinator, with
                           gratuitous ARP or neighbour advertisements; fenced like --exec.
                           Repeatable. Needs CAP_NET_ADMIN and CAP_NET_RAW
    --vip-dev DEV          the interface for --vip [default: the one with an address in the
                           prefix, else the one of --bind]
    --quorum N             quorum mode: N is the cluster's size; a node leads only while a
                           majority (N/2+1, itself included) acknowledges it, so a partition
                           never gives two leaders [default: off]
    --lease DUR            quorum mode: how long an acknowledgement holds [default: 2s]
    --witness              quorum mode: vote, but never stand for election
    --check CMD            health check: sh -c CMD, exit 0 is healthy; an unhealthy node does
                           not stand for election and a coordinator steps down
    --check-url URL        health check: GET URL, a 2xx is healthy
    --check-interval DUR   how often the check runs [default: 2s]
    --check-timeout DUR    a check still running after this long is killed and fails [default: 1s]
    --check-rise N         passes in a row before a node counts as healthy [default: 2]
    --check-fall N         failures in a row before it counts as unhealthy [default: 3]
    --exec-exit-unhealthy  an --exec child that exits by itself makes the node step down
    --no-preempt           a higher node that (re)joins follows a live coordinator instead of
                           taking over
    --preempt-delay DUR    a higher node takes over only once it has been up and healthy this
                           long, at every rejoin [default: 0]
    --state-dir PATH       where the terms this node used are kept across restarts
                           [default: beside the registry dir, e.g. /tmp/bully-<uid>-state]
    -h, --help             print this help
    -V, --version          print the version

Durations: 250ms, 15s, 2m, 1h, or a bare number of seconds.

bully status prints one row per registry member with what it reports in GET /nodeDetails
(registry options and --timeout as above; --json for JSON; --prune removes the records of
the members that do not answer, dir registry only). Exit code 0 when every reachable member
names the same coordinator, 1 when they disagree or none is reachable.

bully status, step-down and maintenance take --tls-cert, --tls-key and --tls-ca too.

Signals: SIGINT and SIGTERM leave the cluster and exit 0; SIGHUP reads --cluster-key-file,
the --tls-* files, the registry's TLS files and --peers-file again and keeps running.
";
