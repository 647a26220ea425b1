// Package cri holds the programs of the images the CRI tests pull: static
// stand-ins for the pause image, nginx and httpd (webserver), and the
// nonewprivs check, built with CGO_ENABLED=0 when the tests start
// (internal/testutil.BuildCRIPrograms) and put in layers over busybox.
// critest pulls the images by the names of Kubernetes' own test images
// (registry.k8s.io/e2e-test-images/..., gcr.io/k8s-staging-cri-tools/...);
// what each program does is what critest's specs check of those images.
package cri
