module example.com/ddpm-sample

go 1.26.8

require github.com/ddpm-go/ddpm v0.0.0

require golang.org/x/image v0.47.0 // indirect

replace github.com/ddpm-go/ddpm => ../..
