# Reads BenchmarkLink output; prints per mode the median ops/s and
# cpu-ns/op and their ratios to mode=plain (throughput >1 = faster,
# CPU >1 = costlier).
function median(list,    a, n, i, j, t) {
	n = split(list, a, " ")
	for (i = 2; i <= n; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
	return n % 2 ? a[(n+1)/2] : (a[n/2] + a[n/2+1]) / 2
}
/^BenchmarkLink\/mode=/ {
	mode = $1; sub(/^BenchmarkLink\/mode=/, "", mode); sub(/-[0-9]+$/, "", mode)
	if (!(mode in ops)) order[++nmodes] = mode
	for (i = 3; i < NF; i++) {
		if ($(i+1) == "ops/s") ops[mode] = ops[mode] " " $i
		if ($(i+1) == "cpu-ns/op") cpu[mode] = cpu[mode] " " $i
	}
}
END {
	if (!("plain" in ops)) { print "bench-secure: no plain run"; exit 1 }
	po = median(ops["plain"]); pc = median(cpu["plain"])
	printf "%-10s %12s %10s %14s %10s\n", "mode", "ops/s", "vs plain", "cpu-ns/op", "vs plain"
	for (k = 1; k <= nmodes; k++) {
		m = order[k]; o = median(ops[m]); c = median(cpu[m])
		printf "%-10s %12.0f %10.3f %14.0f %10.3f\n", m, o, o / po, c, c / pc
	}
	while (("uptime" | getline up) > 0) print "load:" up
}
