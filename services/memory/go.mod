module github.com/brainhq/brain/services/memory

go 1.26.8
