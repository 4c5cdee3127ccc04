module github.com/distcache-go/distcache

go 1.22
