module github.com/distcache-go/distcache

go 1.26.0

require (
	github.com/mattn/go-pointer v0.0.1
	golang.org/x/crypto v0.59.0
	golang.org/x/sys v0.50.0
)
