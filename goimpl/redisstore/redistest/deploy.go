// SPDX-License-Identifier: Apache-2.0

package redistest

import (
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// SentinelGroup is a master, its replicas and the sentinels watching them.
type SentinelGroup struct {
	Name      string // the master set name
	Servers   []*Server
	Sentinels []*Server
	// DownAfter is the sentinels' down-after-milliseconds.
	DownAfter time.Duration
}

// StartSentinelGroup starts a master with replicas replicas and
// sentinels sentinels (quorum: a majority) that notice a dead master after
// downAfter, and waits until the replicas are in sync and every sentinel
// knows the others and the replicas.
func StartSentinelGroup(t testing.TB, replicas, sentinels int, downAfter time.Duration) *SentinelGroup {
	t.Helper()
	g := &SentinelGroup{Name: "dcmaster", DownAfter: downAfter}
	m := Start(t)
	g.Servers = append(g.Servers, m)
	for i := 0; i < replicas; i++ {
		g.Servers = append(g.Servers, Start(t, "--replicaof", "127.0.0.1", strconv.Itoa(m.Port)))
	}
	WaitFor(t, 15*time.Second, "replicas in sync", func() error {
		info, err := m.Do("INFO", "replication")
		if err != nil {
			return err
		}
		if n := Field(info, "connected_slaves"); n != strconv.Itoa(replicas) {
			return fmt.Errorf("connected_slaves:%s", n)
		}
		for i := 0; i < replicas; i++ {
			if v := Field(info, "slave"+strconv.Itoa(i)); !strings.Contains(v, "state=online") {
				return fmt.Errorf("slave%d: %s", i, v)
			}
		}
		return nil
	})
	conf := fmt.Sprintf("sentinel resolve-hostnames no\n"+
		"sentinel monitor %[1]s 127.0.0.1 %[2]d %[3]d\n"+
		"sentinel down-after-milliseconds %[1]s %[4]d\n"+
		"sentinel failover-timeout %[1]s %[5]d\n"+
		"sentinel parallel-syncs %[1]s %[6]d\n",
		g.Name, m.Port, sentinels/2+1, downAfter.Milliseconds(), max(4*downAfter.Milliseconds(), 2000), replicas)
	for i := 0; i < sentinels; i++ {
		g.Sentinels = append(g.Sentinels, StartSentinel(t, conf))
	}
	WaitFor(t, 20*time.Second, "sentinels know each other and the replicas", func() error {
		for _, s := range g.Sentinels {
			r, err := s.Do("SENTINEL", "MASTER", g.Name)
			if err != nil {
				return err
			}
			kv := pairs(r)
			if kv["num-other-sentinels"] != strconv.Itoa(sentinels-1) || kv["num-slaves"] != strconv.Itoa(replicas) {
				return fmt.Errorf("sentinel %d: %d others, %s replicas", s.Port, atoi(kv["num-other-sentinels"]), kv["num-slaves"])
			}
		}
		return nil
	})
	return g
}

func atoi(s string) int { n, _ := strconv.Atoi(s); return n }

// pairs reads a flat name/value reply (one item a line) as a map.
func pairs(r string) map[string]string {
	l := strings.Split(r, "\n")
	m := map[string]string{}
	for i := 0; i+1 < len(l); i += 2 {
		m[l[i]] = l[i+1]
	}
	return m
}

// SetDownAfter makes every sentinel of g take the master for dead after
// d without an answer (and sets the failover timeout StartSentinelGroup
// derives from it). A short d makes a failover test quick, and makes a
// loaded machine's stalled master look dead: a failover then, with
// replication asynchronous, loses the latest writes.
func (g *SentinelGroup) SetDownAfter(t testing.TB, d time.Duration) {
	t.Helper()
	for _, s := range g.Sentinels {
		if _, err := s.Do("SENTINEL", "SET", g.Name, "down-after-milliseconds", strconv.FormatInt(d.Milliseconds(), 10),
			"failover-timeout", strconv.FormatInt(max(4*d.Milliseconds(), 2000), 10)); err != nil {
			t.Fatalf("SENTINEL SET on %s: %v", s.Addr(), err)
		}
	}
	g.DownAfter = d
}

// Addr is the group's redis-sentinel:// address.
func (g *SentinelGroup) Addr() string {
	var hs []string
	for _, s := range g.Sentinels {
		hs = append(hs, s.Addr())
	}
	return "redis-sentinel://" + strings.Join(hs, ",") + "/" + g.Name
}

// MasterAddr asks the first live sentinel for the current master.
func (g *SentinelGroup) MasterAddr() (string, error) {
	var err error
	for _, s := range g.Sentinels {
		var r string
		if r, err = s.Do("SENTINEL", "GET-MASTER-ADDR-BY-NAME", g.Name); err == nil {
			return strings.Replace(r, "\n", ":", 1), nil
		}
	}
	return "", err
}

// Master returns the server that is the master now, by the sentinels.
func (g *SentinelGroup) Master(t testing.TB) *Server {
	t.Helper()
	a, err := g.MasterAddr()
	if err != nil {
		t.Fatalf("sentinel: %v", err)
	}
	for _, s := range g.Servers {
		if s.Addr() == a {
			return s
		}
	}
	t.Fatalf("the sentinels name %s, not one of the group's servers", a)
	return nil
}

// Cluster is a Redis Cluster on loopback.
type Cluster struct {
	Nodes []*Server
}

// StartCluster starts masters*(1+replicas) nodes that detect a dead node
// after nodeTimeout, joins them with redis-cli --cluster create and waits
// until every node sees every slot served.
func StartCluster(t testing.TB, masters, replicas int, nodeTimeout time.Duration) *Cluster {
	t.Helper()
	Require(t, "redis-cli")
	c := &Cluster{}
	args := []string{"--cluster", "create"}
	for i := 0; i < masters*(1+replicas); i++ {
		n := Start(t, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", strconv.FormatInt(nodeTimeout.Milliseconds(), 10))
		c.Nodes = append(c.Nodes, n)
		args = append(args, n.Addr())
	}
	args = append(args, "--cluster-replicas", strconv.Itoa(replicas), "--cluster-yes")
	out, err := exec.Command("redis-cli", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	WaitFor(t, 30*time.Second, "cluster ok on every node", func() error {
		for _, n := range c.Nodes {
			if err := clusterOK(n, len(c.Nodes)); err != nil {
				return err
			}
		}
		return nil
	})
	return c
}

func clusterOK(n *Server, nodes int) error {
	info, err := n.Do("CLUSTER", "INFO")
	if err != nil {
		return err
	}
	if st := Field(info, "cluster_state"); st != "ok" {
		return fmt.Errorf("node %d: cluster_state:%s", n.Port, st)
	}
	if k := Field(info, "cluster_known_nodes"); nodes > 0 && k != strconv.Itoa(nodes) {
		return fmt.Errorf("node %d: cluster_known_nodes:%s", n.Port, k)
	}
	return nil
}

// Addr is the cluster's redis-cluster:// address (every node).
func (c *Cluster) Addr() string {
	var hs []string
	for _, n := range c.Nodes {
		hs = append(hs, n.Addr())
	}
	return "redis-cluster://" + strings.Join(hs, ",")
}

// Masters returns the live nodes that are masters now, by the first live
// node's view.
func (c *Cluster) Masters(t testing.TB) []*Server {
	t.Helper()
	for _, n := range c.Nodes {
		if !n.Alive() {
			continue
		}
		r, err := n.Do("CLUSTER", "NODES")
		if err != nil {
			continue
		}
		var ms []*Server
		for _, l := range strings.Split(r, "\n") {
			f := strings.Fields(l)
			if len(f) < 3 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
				continue
			}
			addr, _, _ := strings.Cut(f[1], "@")
			for _, m := range c.Nodes {
				if m.Addr() == addr && m.Alive() {
					ms = append(ms, m)
				}
			}
		}
		return ms
	}
	t.Fatal("no live cluster node answers CLUSTER NODES")
	return nil
}

// WaitServed waits until every live node names a live master, not
// suspected or failed, for every slot it knows the master of: a client
// that asks a node for the slot map after a failover (a store that was
// idle during it) then learns only masters that answer. cluster_state:ok
// comes earlier: a node that has not yet heard of the promotion still
// names the dead master for its slots.
func (c *Cluster) WaitServed(t testing.TB, d time.Duration) {
	t.Helper()
	live := map[string]bool{}
	for _, n := range c.Nodes {
		live[n.Addr()] = n.Alive()
	}
	WaitFor(t, d, "every live node to route every slot to a live master", func() error {
		for _, n := range c.Nodes {
			if !n.Alive() {
				continue
			}
			r, err := n.Do("CLUSTER", "NODES")
			if err != nil {
				return err
			}
			for _, l := range strings.Split(r, "\n") {
				f := strings.Fields(l)
				if len(f) < 9 || !strings.Contains(f[2], "master") {
					continue // a replica, or a master without slots
				}
				addr, _, _ := strings.Cut(f[1], "@")
				if !live[addr] || strings.Contains(f[2], "fail") {
					return fmt.Errorf("node %d: slots %s on master %s (%s)", n.Port, strings.Join(f[8:], " "), addr, f[2])
				}
			}
		}
		return nil
	})
}

// WaitOK waits until every live node reports cluster_state:ok.
func (c *Cluster) WaitOK(t testing.TB, d time.Duration) {
	t.Helper()
	WaitFor(t, d, "cluster ok on every live node", func() error {
		for _, n := range c.Nodes {
			if n.Alive() {
				if err := clusterOK(n, 0); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// WaitReplicated waits until every replica of master has everything the
// master had written when it was called. Up to 30 s: at load 30 a
// replica of the Sentinel group was still at offset 0 after 10 s, once in
// eight runs (a replica the master dropped syncs again from nothing, and
// a diskless sync first waits 5 s for other replicas).
func WaitReplicated(t testing.TB, master *Server) {
	t.Helper()
	info, err := master.Do("INFO", "replication")
	if err != nil {
		t.Fatalf("INFO on the master: %v", err)
	}
	want := atoi(Field(info, "master_repl_offset"))
	n := atoi(Field(info, "connected_slaves"))
	WaitFor(t, 30*time.Second, "replicas caught up", func() error {
		info, err := master.Do("INFO", "replication")
		if err != nil {
			return err
		}
		for i := 0; i < n; i++ {
			v := Field(info, "slave"+strconv.Itoa(i))
			off := 0
			for _, kv := range strings.Split(v, ",") {
				if o, ok := strings.CutPrefix(kv, "offset="); ok {
					off = atoi(o)
				}
			}
			if off < want {
				return fmt.Errorf("slave%d at offset %d, want %d (%s)", i, off, want, v)
			}
		}
		return nil
	})
}
