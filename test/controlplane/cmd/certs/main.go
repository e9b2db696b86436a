// Command certs writes the PKI of the local test control plane, so no openssl is needed:
//
//	certs --dir DIR
//
// DIR receives PEM files:
//
//	ca.crt, ca.key                         cluster CA (signs every serving and client certificate)
//	apiserver.crt, apiserver.key           kube-apiserver serving cert for 127.0.0.1, ::1, localhost, the
//	                                       in-cluster names and ClusterIP of the "kubernetes" Service, and
//	                                       10.244.0.1, the containerd node's bridge address, which is the
//	                                       apiserver's advertise address (the Service's endpoint) there
//	admin.crt, admin.key                   client cert, O=system:masters (cluster-admin, for tests and kubectl)
//	controller-manager.crt/.key            client cert for kube-controller-manager, O=system:masters because it runs
//	                                       its controllers with its own identity (--use-service-account-credentials=false)
//	process-kubelet.crt/.key               client cert, CN=agentenv:process-kubelet: the process kubelet is also the
//	                                       scheduler of its node, and NodeRestriction forbids a system:node user to
//	                                       create pods/binding, so it is a plain user with its own ClusterRole
//	node-containerd.crt/.key               client cert of the containerd node's kubelet, CN=system:node:agentenv-containerd
//	scheduler.crt/.key                     client cert of kube-scheduler, CN=system:kube-scheduler
//	apiserver-kubelet-client.crt/.key      kube-apiserver's client cert towards kubelets, O=system:masters
//	service-account.key, service-account.pub  RSA key pair that signs and verifies service-account tokens
//
// Existing files are kept: the command is idempotent, so a restarted cluster keeps its identity.
package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

const validity = 10 * 365 * 24 * time.Hour

type clientCert struct {
	file         string
	commonName   string
	organization []string
}

var clients = []clientCert{
	{"admin", "agentenv:admin", []string{"system:masters"}},
	{"controller-manager", "system:kube-controller-manager", []string{"system:masters"}},
	{"process-kubelet", "agentenv:process-kubelet", nil},
	// The containerd node's real kubelet: a system:node identity, so the Node authorizer and
	// NodeRestriction treat it as every production kubelet.
	{"node-containerd", "system:node:agentenv-containerd", []string{"system:nodes"}},
	// kube-scheduler (runs with the containerd node), bound by the default RBAC to system:kube-scheduler.
	{"scheduler", "system:kube-scheduler", nil},
	// kube-apiserver's client identity towards kubelets (logs, exec, port-forward); the kubelet
	// authorizes it through a SubjectAccessReview.
	{"apiserver-kubelet-client", "kube-apiserver-kubelet-client", []string{"system:masters"}},
}

func main() {
	dir := flag.String("dir", "", "directory that receives the PEM files")
	flag.Parse()
	if *dir == "" {
		fail(fmt.Errorf("--dir is required"))
	}
	if err := os.MkdirAll(*dir, 0o700); err != nil {
		fail(err)
	}
	if exists(filepath.Join(*dir, "ca.crt")) && exists(filepath.Join(*dir, "service-account.pub")) && exists(filepath.Join(*dir, clients[len(clients)-1].file+".crt")) {
		return
	}
	caKey, caCert := must2(newCA())
	write(*dir, "ca", caCert, caKey)

	serving := &x509.Certificate{
		Subject:     pkix.Name{CommonName: "kube-apiserver"},
		DNSNames:    []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1"), net.ParseIP("10.0.0.1"), net.ParseIP("10.244.0.1")},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	cert, key := must2(sign(serving, caCert, caKey))
	write(*dir, "apiserver", cert, key)

	for _, c := range clients {
		tmpl := &x509.Certificate{
			Subject:     pkix.Name{CommonName: c.commonName, Organization: c.organization},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		}
		cert, key := must2(sign(tmpl, caCert, caKey))
		write(*dir, c.file, cert, key)
	}

	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		fail(err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		fail(err)
	}
	writePEM(*dir, "service-account.key", "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey))
	writePEM(*dir, "service-account.pub", "PUBLIC KEY", pub)
}

func newCA() (*ecdsa.PrivateKey, *x509.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "agentenv-local-ca"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return key, cert, err
}

func sign(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	tmpl.SerialNumber = serial()
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(validity)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func write(dir, name string, cert *x509.Certificate, key *ecdsa.PrivateKey) {
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		fail(err)
	}
	writePEM(dir, name+".crt", "CERTIFICATE", cert.Raw)
	writePEM(dir, name+".key", "EC PRIVATE KEY", der)
}

func writePEM(dir, file, blockType string, der []byte) {
	data := pem.EncodeToMemory(&pem.Block{Type: blockType, Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, file), data, 0o600); err != nil {
		fail(err)
	}
}

func serial() *big.Int {
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	if err != nil {
		fail(err)
	}
	return n
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		fail(err)
	}
	return a, b
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "certs:", err)
	os.Exit(1)
}
